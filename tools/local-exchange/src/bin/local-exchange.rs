fn main() -> std::process::ExitCode {
    local_exchange::cli::main()
}
