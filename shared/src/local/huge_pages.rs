//! Transparent huge pages off for this process.
//!
//! mimalloc asks the kernel for huge pages on its arenas (and on hosts where THP is
//! "always" the kernel gives them anyway). Each first touch of such a region then zeroes
//! 2 MiB at once, with compaction when memory is fragmented, on whichever thread touched
//! it: a webhook's worker or the store's writer. Measured under load (docs/PERFORMANCE.md,
//! "A seventh period"), turning them off halved the webhook ack p99 and lowered peak memory.

/// Turns transparent huge pages off for this process (Linux; elsewhere there is nothing
/// to do). Call it first in `main`: memory already backed by huge pages stays so. An error
/// means the kernel refused (before Linux 3.15), which costs speed, not correctness.
pub fn disable_transparent_huge_pages() -> std::io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: PR_SET_THP_DISABLE takes integer arguments only and changes nothing in
        // this process's memory; it only tells the kernel how to back later page faults.
        if unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}
