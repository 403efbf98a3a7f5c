//! SVG line charts (plotters, SVG backend only): a title and a column of panels that share
//! the x axis, each with named series. Used by `vdmm-ctl alb simulate --plot`.

use std::path::Path;

use plotters::prelude::*;

use crate::error::{Error, Result};

/// One line.
pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
}

/// One chart of the column.
pub struct Panel {
    pub title: String,
    pub series: Vec<Series>,
}

/// Pixels per panel.
const PANEL_HEIGHT: u32 = 260;
const WIDTH: u32 = 960;

/// Writes the panels, one under the other, to an SVG file at `path`. The y axis of every
/// panel has the same range (from 0 to the largest value of all), so panels compare at a
/// glance.
pub fn write_svg(
    path: &Path,
    title: &str,
    x_label: &str,
    y_label: &str,
    panels: &[Panel],
) -> Result<()> {
    let fail = |e: &dyn std::fmt::Display| Error::Plot {
        path: path.to_path_buf(),
        detail: e.to_string(),
    };
    let all = || {
        panels
            .iter()
            .flat_map(|p| &p.series)
            .flat_map(|s| &s.points)
    };
    let x_max = all().map(|p| p.0).fold(0.0, f64::max).max(1.0);
    let y_max = all().map(|p| p.1).fold(0.0, f64::max).max(1e-9) * 1.05;
    let height = 40 + PANEL_HEIGHT * panels.len().max(1) as u32;
    {
        let root = SVGBackend::new(path, (WIDTH, height)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| fail(&e))?;
        let root = root
            .titled(title, ("sans-serif", 20))
            .map_err(|e| fail(&e))?;
        let areas = root.split_evenly((panels.len().max(1), 1));
        for (panel, area) in panels.iter().zip(areas) {
            let mut chart = ChartBuilder::on(&area)
                .caption(&panel.title, ("sans-serif", 16))
                .margin(8)
                .x_label_area_size(32)
                .y_label_area_size(48)
                .build_cartesian_2d(0.0..x_max, 0.0..y_max)
                .map_err(|e| fail(&e))?;
            chart
                .configure_mesh()
                .x_desc(x_label)
                .y_desc(y_label)
                .light_line_style(WHITE.mix(0.0))
                .draw()
                .map_err(|e| fail(&e))?;
            for (i, s) in panel.series.iter().enumerate() {
                let color = Palette99::pick(i).to_rgba();
                chart
                    .draw_series(LineSeries::new(
                        s.points.iter().copied(),
                        color.stroke_width(1),
                    ))
                    .map_err(|e| fail(&e))?
                    .label(&s.name)
                    .legend(move |(x, y)| PathElement::new([(x, y), (x + 16, y)], color));
            }
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::UpperRight)
                .background_style(WHITE.mix(0.8))
                .border_style(BLACK)
                .draw()
                .map_err(|e| fail(&e))?;
        }
        root.present().map_err(|e| fail(&e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_an_svg_with_every_series() {
        let dir = std::env::temp_dir().join(format!("vdmm-plot-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("p.svg");
        let panels = vec![Panel {
            title: "panel one".into(),
            series: vec![
                Series {
                    name: "ap1".into(),
                    points: vec![(0.0, 0.5), (10.0, 1.5)],
                },
                Series {
                    name: "ap2".into(),
                    points: vec![(0.0, 0.2), (10.0, 0.1)],
                },
            ],
        }];
        write_svg(&path, "a title", "time (s)", "utilisation", &panels).unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(svg.starts_with("<svg"), "{}", &svg[..100.min(svg.len())]);
        for text in ["a title", "panel one", "ap1", "ap2", "utilisation"] {
            assert!(svg.contains(text), "no {text} in the SVG");
        }
        assert!(svg.matches("<polyline").count() >= 2);
        let e = write_svg(Path::new("/nonexistent/dir/p.svg"), "t", "x", "y", &panels);
        assert!(
            e.unwrap_err()
                .to_string()
                .starts_with("cannot write the plot /nonexistent/dir/p.svg")
        );
    }
}
