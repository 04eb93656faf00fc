//! The `weir` binary: the CLI with no custom stages.

fn main() -> std::process::ExitCode {
    weir_cli::main_with(weir::compose::Registry::new())
}
