// mimalloc rather than glibc's malloc: hyper's buffers are often allocated on one worker thread
// and freed on the other, and glibc then takes the other thread's arena lock. Under bench/mcp.sh
// that cost 0.08-0.14 futex calls per MCP request; with mimalloc, 0.03-0.04.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    custory_mcp::cli::main()
}
