//! The `command` provider: an agent CLI (`claude -p`, `codex exec`,
//! `llm -m X`) run as an argv, never through a shell, with the prompt on
//! standard input and the document on standard output.

use super::{Answer, Prompt};
use crate::ModelError;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::AsyncWriteExt;

pub(crate) struct Agent {
    pub argv: Vec<String>,
    pub timeout: Duration,
    /// Where the agent runs (the workspace root), so agents that read files see the project.
    pub work_dir: Option<PathBuf>,
}

impl Agent {
    fn program(&self) -> String {
        self.argv.first().cloned().unwrap_or_default()
    }

    fn failed(&self, message: String) -> ModelError {
        ModelError::Agent {
            program: self.program(),
            message,
        }
    }

    pub(crate) async fn call(&self, prompt: &Prompt) -> Result<Answer, ModelError> {
        let Some((program, args)) = self.argv.split_first() else {
            return Err(ModelError::Config(
                "`command` is empty: give the agent CLI's argv, e.g. [\"claude\", \"-p\"]".into(),
            ));
        };
        let mut cmd = tokio::process::Command::new(program);
        cmd.args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Its own process group, so a timeout ends whatever the agent started too.
            .process_group(0)
            .kill_on_drop(true);
        if let Some(dir) = &self.work_dir {
            cmd.current_dir(dir);
        }
        let mut child = cmd
            .spawn()
            .map_err(|e| self.failed(format!("could not be started: {e}")))?;
        let pid = child.id();
        let input = format!("{}\n\n{}", prompt.system, prompt.user);
        let stdin = child.stdin.take();
        // Written concurrently with reading the output: an agent that
        // answers before reading everything must not deadlock on full pipes.
        let writer = tokio::spawn(async move {
            if let Some(mut stdin) = stdin {
                // An agent may close stdin early; its exit status tells whether that mattered.
                let _ = stdin.write_all(input.as_bytes()).await;
                let _ = stdin.shutdown().await;
            }
        });
        let output = match tokio::time::timeout(self.timeout, child.wait_with_output()).await {
            Ok(Ok(output)) => output,
            Ok(Err(e)) => return Err(self.failed(format!("could not be read from: {e}"))),
            Err(_) => {
                if let Some(pid) = pid.and_then(|p| rustix::process::Pid::from_raw(p as i32)) {
                    let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
                }
                writer.abort();
                return Err(self.failed(format!(
                    "did not finish within {}s (the model's `timeout`) and was stopped",
                    self.timeout.as_secs_f64()
                )));
            }
        };
        writer.abort();
        let stderr = String::from_utf8_lossy(&output.stderr);
        let stderr = stderr.trim();
        if !output.status.success() {
            let status = match output.status.code() {
                Some(code) => format!("exited with status {code}"),
                None => "was killed by a signal".to_owned(),
            };
            let said = if stderr.is_empty() {
                "(nothing on stderr)".to_owned()
            } else {
                // The end of stderr is where the reason usually is.
                tail(stderr, 2000)
            };
            return Err(self.failed(format!("{status}; stderr: {said}")));
        }
        let text = String::from_utf8_lossy(&output.stdout).into_owned();
        Ok(Answer {
            text,
            input_tokens: 0,
            output_tokens: 0,
            model: Some(self.argv.join(" ")),
            cut_short: false,
        })
    }
}

/// The last `max` characters.
fn tail(text: &str, max: usize) -> String {
    let count = text.chars().count();
    if count <= max {
        return text.to_owned();
    }
    let skip = count - max;
    let start = text.char_indices().nth(skip).map_or(0, |(i, _)| i);
    format!("…{}", &text[start..])
}

#[cfg(test)]
mod tests {
    #[test]
    fn tail_keeps_the_end() {
        assert_eq!(super::tail("abcdef", 3), "…def");
        assert_eq!(super::tail("abc", 3), "abc");
        assert_eq!(crate::providers::wire::cut("abcdef", 3), "abc…");
    }
}
