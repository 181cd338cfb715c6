fn main() {
    // Die quietly on a closed pipe (`hhlctl plan | head`), like other Unix tools.
    // SAFETY: called first thing, before any thread exists.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    std::process::exit(hhlctl::cli::run());
}
