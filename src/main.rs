//! The `crmproxy` binary: all the work is in the library; this only reports errors.

#![forbid(unsafe_code)]

fn main() -> std::process::ExitCode {
    crmproxy::cli::main()
}
