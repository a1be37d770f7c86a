// mimalloc rather than glibc's malloc: hyper's buffers are allocated on one worker thread and
// often freed on the other, and glibc then takes the other thread's arena lock; under load that
// showed as futex waits on most of the MCP requests that waited at all (see bench/mcp.sh and
// ARCHITECTURE.md, "Performance").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    custory_mcp::cli::main()
}
