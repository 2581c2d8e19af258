//! CPU time and memory of this process or thread, from `/proc` (Linux), for the speed
//! figures of benchmarks and `nonstop render`: CPU seconds, not wall
//! seconds, so a busy machine does not skew them.

/// User + system CPU seconds from a `/proc/.../stat` file; `None` if unreadable.
fn stat_seconds(path: &str) -> Option<f64> {
    // Fields 14 and 15 of stat (after the parenthesised name): user and
    // system time in clock ticks (100 per second on Linux).
    let stat = std::fs::read_to_string(path).ok()?;
    let fields: Vec<&str> = stat.rsplit(')').next()?.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok());
    Some((ticks(11)? + ticks(12)?) / 100.0)
}

/// CPU seconds used by the calling thread.
pub fn thread_seconds() -> f64 {
    stat_seconds("/proc/thread-self/stat").unwrap_or(0.0)
}

/// CPU seconds used by the whole process, all threads.
pub fn process_seconds() -> f64 {
    stat_seconds("/proc/self/stat").unwrap_or(0.0)
}

/// A `VmXXX:` line of a `/proc/.../status` file in bytes.
fn status_bytes(path: &str, key: &str) -> Option<u64> {
    let status = std::fs::read_to_string(path).ok()?;
    let kb = status.lines().find(|l| l.starts_with(key))?.split_whitespace().nth(1)?.parse::<u64>().ok()?;
    Some(kb * 1024)
}

fn status_kb(key: &str) -> u64 {
    status_bytes("/proc/self/status", key).unwrap_or(0)
}

/// CPU seconds and resident bytes of another process (`nonstop loadtest
/// --pid`); `None` when it cannot be read.
pub fn usage_of(pid: u32) -> Option<(f64, u64)> {
    Some((stat_seconds(&format!("/proc/{pid}/stat"))?, status_bytes(&format!("/proc/{pid}/status"), "VmRSS:")?))
}

/// Resident memory of this process now, bytes.
pub fn rss_bytes() -> u64 {
    status_kb("VmRSS:")
}

/// Peak resident memory of this process so far, bytes.
pub fn peak_rss_bytes() -> u64 {
    status_kb("VmHWM:")
}

#[cfg(test)]
mod tests {
    #[test]
    fn cpu_time_advances_with_work() {
        let t0 = super::thread_seconds();
        let mut x = 0u64;
        while super::thread_seconds() - t0 < 0.05 {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
        }
        assert!(super::process_seconds() >= super::thread_seconds() - 1e-9, "{x}");
    }
}
