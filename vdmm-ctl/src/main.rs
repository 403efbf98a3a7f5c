//! `vdmm-ctl`: parse the command line, run it, print the output; on failure print
//! `error: ...` (one line) and exit with status 1.

use clap::Parser;

fn main() {
    let cli = vdmm_ctl::cli::Cli::parse();
    match vdmm_ctl::commands::run(cli).map_err(anyhow::Error::from) {
        Ok(out) => print!("{out}"),
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::exit(1);
        }
    }
}
