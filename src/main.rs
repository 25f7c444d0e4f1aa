//! `paper-engine-orders`: the loader (default), the sample data generator (`sample`) and the
//! operator's commands (`status`, `deliveries`, `retry`, `skip`). Everything lives in the
//! library ([`paper_engine_orders::cli`]).
fn main() -> std::process::ExitCode {
    paper_engine_orders::cli::main()
}
