//! Test support for `vigil-sensor`: writes the file named by its argument from a second
//! thread, and prints that thread's id. The sensor tests run it as a child, because the
//! sensor never reports its own process.

fn main() {
    let Some(path) = std::env::args_os().nth(1) else {
        eprintln!("usage: vigil-sensor-thread-writer FILE");
        std::process::exit(2);
    };
    // Later than the process's start by more than a clock tick (10 ms), which is the
    // resolution of the start time in a process's identity.
    std::thread::sleep(std::time::Duration::from_millis(100));
    let writer = std::thread::spawn(move || -> std::io::Result<String> {
        std::fs::write(&path, b"written by a thread\n")?;
        // `/proc/thread-self` is `PID/task/TID`.
        let me = std::fs::read_link("/proc/thread-self")?;
        Ok(me
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default())
    });
    match writer.join() {
        Ok(Ok(tid)) => println!("{tid}"),
        Ok(Err(e)) => {
            eprintln!("thread-writer: {e}");
            std::process::exit(1);
        }
        Err(_) => std::process::exit(1),
    }
}
