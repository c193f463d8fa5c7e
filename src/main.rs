//! The `crmproxy` binary: all the work is in the library; this only reports errors.

#![forbid(unsafe_code)]

/// jemalloc returns freed memory to the system: with glibc's malloc, the memory a
/// big message needed while it was tracked often stayed with the process for good
/// (`imap_bigdata::tracking_a_30_mb_message_gives_its_memory_back`).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> std::process::ExitCode {
    crmproxy::cli::main()
}
