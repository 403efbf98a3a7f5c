//! Program loads that survive signals. The verifier gives up with EAGAIN when a signal
//! arrives while it works (a SIGCHLD from any child of the process is enough), and the
//! data plane takes about a second to verify, so in a busy process (the test harness, a
//! daemon running helpers) a load can fail for no fault of the program. Such a load is
//! retried; any other outcome is returned as it is.

use aya::programs::ProgramError;

/// Loads at most this many times before giving up.
const ATTEMPTS: usize = 5;

/// Runs `load` (a program's `load()`) again while it fails with EAGAIN.
pub fn load_retrying(
    mut load: impl FnMut() -> Result<(), ProgramError>,
) -> Result<(), ProgramError> {
    let mut attempt = 1;
    loop {
        match load() {
            Err(ProgramError::LoadError { io_error, .. })
                if io_error.raw_os_error() == Some(libc::EAGAIN) && attempt < ATTEMPTS =>
            {
                attempt += 1;
            }
            other => return other,
        }
    }
}
