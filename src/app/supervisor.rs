//! Long-lived tasks with handles: started in a documented order, stopped in reverse,
//! each within what is left of the shutdown grace period.

use std::future::Future;
use std::time::{Duration, Instant};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

struct Task {
    name: &'static str,
    token: CancellationToken,
    handle: JoinHandle<()>,
}

/// Owns every long-lived task.
pub struct Supervisor {
    root: CancellationToken,
    tasks: Vec<Task>,
}

impl Supervisor {
    /// A supervisor whose tasks get children of `root`.
    pub fn new(root: CancellationToken) -> Self {
        Self {
            root,
            tasks: Vec::new(),
        }
    }

    /// Starts a task with its own cancellation token.
    pub fn spawn<F, Fut>(&mut self, name: &'static str, f: F)
    where
        F: FnOnce(CancellationToken) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        // Not a child of root: shutdown cancels tasks one by one, in reverse order.
        let token = CancellationToken::new();
        let handle = tokio::spawn(f(token.clone()));
        tracing::debug!(operation = "supervisor.spawn", task = name, "task started");
        self.tasks.push(Task {
            name,
            token,
            handle,
        });
    }

    /// The root token (cancelled by a signal or by a test).
    pub fn root(&self) -> &CancellationToken {
        &self.root
    }

    /// Whether some task ended on its own (a bug or a fatal error).
    pub fn any_finished(&self) -> Option<&'static str> {
        self.tasks
            .iter()
            .find(|t| t.handle.is_finished())
            .map(|t| t.name)
    }

    /// Stops the tasks in reverse start order, sharing `grace` between them. Returns
    /// the names of tasks that overran and were aborted.
    pub async fn stop_all(mut self, grace: Duration) -> Vec<&'static str> {
        let deadline = Instant::now() + grace;
        let mut overran = Vec::new();
        while let Some(task) = self.tasks.pop() {
            task.token.cancel();
            let left = deadline.saturating_duration_since(Instant::now());
            let mut handle = task.handle;
            match tokio::time::timeout(left, &mut handle).await {
                Ok(Ok(())) => {
                    tracing::debug!(
                        operation = "supervisor.stop",
                        task = task.name,
                        "task stopped"
                    );
                }
                Ok(Err(e)) => tracing::error!(
                    operation = "supervisor.stop",
                    task = task.name,
                    error = %e,
                    "task failed"
                ),
                Err(_) => {
                    tracing::warn!(
                        operation = "supervisor.stop",
                        task = task.name,
                        grace_secs = grace.as_secs(),
                        "task overran the shutdown grace period; aborted"
                    );
                    handle.abort();
                    overran.push(task.name);
                }
            }
        }
        overran
    }
}
