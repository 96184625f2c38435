//! bkc: the command line is in src/cli/.

mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}
