//! The `alephauto` binary: parses the command line and hands over to the library.

fn main() -> std::process::ExitCode {
    alephauto::telemetry::init();
    alephauto::cli::main()
}
