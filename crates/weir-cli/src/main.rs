//! The `weir` binary: the CLI with no custom stages.

/// Decoding JSON lines allocates every string and map of every item:
/// mimalloc's thread-local free lists make that markedly cheaper than the
/// system allocator (the `cli` benchmark, docs/BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    weir_cli::main_with(weir::compose::Registry::new())
}
