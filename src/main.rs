fn main() -> std::process::ExitCode {
    custory_mcp::cli::main()
}
