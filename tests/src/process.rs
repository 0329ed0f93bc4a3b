//! Child processes with deadlines: output captured line by line, killed on drop.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// Lines a process printed so far (stdout and stderr interleaved, as they arrived).
#[derive(Clone, Default)]
pub struct Output {
    inner: Arc<(Mutex<OutputState>, Condvar)>,
}

#[derive(Default)]
struct OutputState {
    lines: Vec<String>,
    /// Streams still open (stdout, stderr).
    open: usize,
}

impl Output {
    fn attach<R: Read + Send + 'static>(&self, stream: R, tag: &'static str) {
        self.inner.0.lock().unwrap().open += 1;
        let this = self.clone();
        thread::spawn(move || {
            for line in BufReader::new(stream).lines() {
                let Ok(line) = line else { break };
                let (lock, cvar) = &*this.inner;
                lock.lock().unwrap().lines.push(format!("{tag}{line}"));
                cvar.notify_all();
            }
            let (lock, cvar) = &*this.inner;
            lock.lock().unwrap().open -= 1;
            cvar.notify_all();
        });
    }

    /// Everything printed so far, one line per line.
    pub fn text(&self) -> String {
        self.inner.0.lock().unwrap().lines.join("\n")
    }

    /// Waits until a line satisfies `find` (which returns what it extracted), the streams
    /// close, or the deadline passes.
    pub fn wait_for<T>(
        &self,
        timeout: Duration,
        mut find: impl FnMut(&str) -> Option<T>,
    ) -> Option<T> {
        let deadline = Instant::now() + timeout;
        let (lock, cvar) = &*self.inner;
        let mut state = lock.lock().unwrap();
        let mut seen = 0;
        loop {
            for line in &state.lines[seen..] {
                if let Some(found) = find(line) {
                    return Some(found);
                }
            }
            seen = state.lines.len();
            let now = Instant::now();
            if state.open == 0 || now >= deadline {
                return None;
            }
            state = cvar.wait_timeout(state, deadline - now).unwrap().0;
        }
    }
}

/// A running child process, killed (with its process group) when dropped.
pub struct Proc {
    pub name: String,
    child: Child,
    pub output: Output,
}

impl Proc {
    /// Starts `cmd` with stdout and stderr captured; stdin is closed unless `cmd` set it.
    pub fn spawn(name: &str, cmd: &mut Command) -> Proc {
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        #[cfg(unix)]
        {
            use std::os::unix::process::CommandExt;
            // Own process group, so that drop also ends whatever the child started.
            cmd.process_group(0);
        }
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name} ({cmd:?}): {e}"));
        let output = Output::default();
        if let Some(out) = child.stdout.take() {
            output.attach(out, "");
        }
        if let Some(err) = child.stderr.take() {
            output.attach(err, "");
        }
        Proc {
            name: name.to_owned(),
            child,
            output,
        }
    }

    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Exit status if the process has ended.
    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Kills the process group now.
    pub fn kill(&mut self) {
        if self.try_wait().is_some() {
            return;
        }
        #[cfg(unix)]
        {
            // SIGKILL to the whole group (negative pid); the child is its group leader.
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{}", self.child.id())])
                .stderr(Stdio::null())
                .status();
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Waits for exit, killing it at the deadline (then panics with its output).
    pub fn wait(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.try_wait() {
                // Let the reader threads drain what is left.
                self.output.wait_for(Duration::from_secs(5), |_| None::<()>);
                return status;
            }
            if Instant::now() >= deadline {
                self.kill();
                panic!(
                    "{} did not finish within {:?}; its output:\n{}",
                    self.name,
                    timeout,
                    self.output.text()
                );
            }
            thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// What a finished command printed.
pub struct Finished {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Finished {
    /// The exit code (`-1` when killed by a signal).
    pub fn code(&self) -> i32 {
        self.status.code().unwrap_or(-1)
    }
}

/// Runs `cmd` to completion with `input` on stdin, within `timeout`, capturing stdout and
/// stderr separately.
pub fn run(name: &str, cmd: &mut Command, input: &[u8], timeout: Duration) -> Finished {
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt;
        cmd.process_group(0);
    }
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {name} ({cmd:?}): {e}"));
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_vec();
    let writer = thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let read_all = |stream: Option<Box<dyn Read + Send>>| {
        thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(mut s) = stream {
                let _ = s.read_to_end(&mut buf);
            }
            String::from_utf8_lossy(&buf).into_owned()
        })
    };
    let out = read_all(
        child
            .stdout
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
    );
    let err = read_all(
        child
            .stderr
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
    );
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait().ok().flatten() {
            break status;
        }
        if Instant::now() >= deadline {
            #[cfg(unix)]
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{}", child.id())])
                .stderr(Stdio::null())
                .status();
            let _ = child.kill();
            let _ = child.wait();
            let stdout = out.join().unwrap_or_default();
            let stderr = err.join().unwrap_or_default();
            panic!(
                "{name} did not finish within {timeout:?}\nstdout:\n{stdout}\nstderr:\n{stderr}"
            );
        }
        thread::sleep(Duration::from_millis(20));
    };
    let _ = writer.join();
    Finished {
        status,
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
    }
}
