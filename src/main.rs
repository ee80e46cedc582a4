use std::process::ExitCode;

use clap::{Parser, Subcommand};
use klaxon::{
    crd,
    runtime::{operator, telemetry},
};

/// Klaxon: team-owned incident response for Kubernetes.
#[derive(Parser)]
#[command(name = "klaxon", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the operator (in-cluster config, or KUBECONFIG).
    Run(operator::RunArgs),
    /// Print every CustomResourceDefinition as YAML.
    Crds {
        /// Write one file per CRD into this directory instead.
        #[arg(long)]
        out_dir: Option<std::path::PathBuf>,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Crds { out_dir: Some(dir) } => match crd::write_all(&dir) {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => fail(&error),
        },
        Command::Crds { out_dir: None } => match crd::all_yaml() {
            Ok(yaml) => {
                print!("{yaml}");
                ExitCode::SUCCESS
            }
            Err(error) => fail(&error),
        },
        Command::Run(args) => {
            if let Err(error) = telemetry::init(args.log_format, &args.log_level) {
                return fail(&error);
            }
            match operator::run(args).await {
                Ok(()) => ExitCode::SUCCESS,
                Err(error) => fail(&error),
            }
        }
    }
}

/// One line on stderr: the error and its causes.
fn fail(error: &dyn std::error::Error) -> ExitCode {
    let mut line = format!("klaxon: error: {error}");
    let mut source = error.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !line.contains(&text) {
            line.push_str(": ");
            line.push_str(&text);
        }
        source = cause.source();
    }
    eprintln!("{line}");
    ExitCode::FAILURE
}
