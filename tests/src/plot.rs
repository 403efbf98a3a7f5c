//! SVG charts of the labs' measurements (plotters): line charts over time with event
//! markers, one or several stacked on a shared scale, and the colours every chart uses,
//! so the demo's scenarios (handover, and later the load balancer's) look alike.

use std::path::Path;

use anyhow::{Context, Result, anyhow};
use plotters::prelude::*;

/// The colours of the series, in order: blue, red, green, orange, purple, grey.
pub const PALETTE: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(255, 127, 14),
    RGBColor(148, 103, 189),
    RGBColor(127, 127, 127),
];

/// One line of a chart.
pub struct Series {
    pub label: String,
    pub colour: RGBColor,
    /// (x, y) points, x ascending.
    pub points: Vec<(f64, f64)>,
}

/// A vertical line at `x` (an event such as a handover command), with a label.
pub struct Marker {
    pub x: f64,
    pub label: String,
    pub colour: RGBColor,
}

/// One chart of a figure: its series and markers.
pub struct Panel {
    pub title: String,
    pub series: Vec<Series>,
    pub markers: Vec<Marker>,
}

/// Writes an SVG line chart of `series` with dashed `markers` to `path`.
pub fn line_chart(
    path: &Path,
    title: &str,
    x_label: &str,
    y_label: &str,
    series: Vec<Series>,
    markers: Vec<Marker>,
) -> Result<()> {
    stacked_charts(
        path,
        x_label,
        y_label,
        &[Panel {
            title: title.to_string(),
            series,
            markers,
        }],
    )
}

/// Writes `panels` one above the other to an SVG at `path`, all with the same x and y
/// ranges (so they compare at a glance).
pub fn stacked_charts(path: &Path, x_label: &str, y_label: &str, panels: &[Panel]) -> Result<()> {
    let points = || {
        panels
            .iter()
            .flat_map(|p| p.series.iter().flat_map(|s| s.points.iter()))
    };
    let x_max = points().map(|p| p.0).fold(0.0f64, f64::max).max(0.001);
    let y_max = points().map(|p| p.1).fold(0.0f64, f64::max).max(1.0) * 1.15;
    let height = 80 + 300 * panels.len().max(1) as u32;
    let root = SVGBackend::new(path, (1100, height)).into_drawing_area();
    let err = |e: &dyn std::fmt::Display| anyhow!("plot {}: {e}", path.display());
    root.fill(&WHITE).map_err(|e| err(&e))?;
    for (area, panel) in root
        .split_evenly((panels.len().max(1), 1))
        .iter()
        .zip(panels)
    {
        let mut chart = ChartBuilder::on(area)
            .caption(&panel.title, ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(70)
            .build_cartesian_2d(0.0..x_max, 0.0..y_max)
            .map_err(|e| err(&e))?;
        chart
            .configure_mesh()
            .x_desc(x_label)
            .y_desc(y_label)
            .y_label_formatter(&|y| format!("{y:.0}"))
            .draw()
            .map_err(|e| err(&e))?;
        for m in &panel.markers {
            let style = ShapeStyle::from(&m.colour.mix(0.6)).stroke_width(1);
            chart
                .draw_series(DashedLineSeries::new(
                    vec![(m.x, 0.0), (m.x, y_max)],
                    6,
                    4,
                    style,
                ))
                .map_err(|e| err(&e))?;
            chart
                .draw_series(std::iter::once(Text::new(
                    m.label.clone(),
                    (m.x, y_max * 0.97),
                    ("sans-serif", 12).into_font().color(&m.colour),
                )))
                .map_err(|e| err(&e))?;
        }
        for s in &panel.series {
            let colour = s.colour;
            chart
                .draw_series(LineSeries::new(
                    s.points.iter().copied(),
                    colour.stroke_width(2),
                ))
                .map_err(|e| err(&e))?
                .label(s.label.clone())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(2))
                });
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .draw()
            .map_err(|e| err(&e))?;
    }
    root.present()
        .map_err(|e| err(&e))
        .with_context(|| format!("write {}", path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_an_svg_with_series_and_markers() {
        let path = std::env::temp_dir().join(format!("vdmm-plot-{}.svg", std::process::id()));
        line_chart(
            &path,
            "t",
            "s",
            "packets/s",
            vec![Series {
                label: "vAP".into(),
                colour: PALETTE[0],
                points: vec![(0.0, 10.0), (1.0, 0.0), (2.0, 10.0)],
            }],
            vec![Marker {
                x: 1.0,
                label: "handover".into(),
                colour: PALETTE[5],
            }],
        )
        .unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        assert!(svg.starts_with("<svg"), "{}", &svg[..svg.len().min(100)]);
        assert!(svg.contains("handover") && svg.contains("vAP"));
        let _ = std::fs::remove_file(path);
    }
}
