//! What only one canaryd may run at a time — the controller and the admin listener — as one
//! task on the control runtime that can be started late, stopped and run again, so that
//! `serve --upgrade` hands them from the old process to the new one without overlap.
//!
//! A normal start runs them at once. The old side of an upgrade stops them ([`Upgrading`],
//! the hooks of `canaryd_proxy::serve_upgrades`): the controller persists the rollout state,
//! the decision log is flushed, and the admin listener stops accepting (the socket stays open,
//! the new process accepts on its duplicate). A failed upgrade runs them again; a successful one
//! starts the graceful stop. The new side starts them only once the old process drains.

use std::sync::Arc;
use std::time::Duration;

use canaryd_controller::{run_admin, AdminState, Controller, DecisionLog, LiveSources};
use canaryd_proxy::{StopHandle, UpgradeHooks};
use tokio::sync::{mpsc, watch};

/// What the control task is told.
#[derive(Debug)]
pub enum Order {
    /// Run the controller and the admin listener (again).
    Run,
    /// Stop both; the sender hears back once the state and the decision log are on disk.
    Stop(std::sync::mpsc::Sender<()>),
}

/// The controller and the admin listener, idle until [`Order::Run`].
pub struct Session {
    pub controller: Controller<LiveSources>,
    pub log: Arc<DecisionLog>,
    pub admin: std::net::TcpListener,
    pub admin_state: Arc<AdminState>,
}

/// Sends orders to the control task.
#[derive(Debug, Clone)]
pub struct Orders(mpsc::Sender<Order>);

// === impl Orders ===

impl Orders {
    pub fn run(&self) {
        let _ = self.0.try_send(Order::Run);
    }

    /// Stops the controller and the admin listener; `true` once the state and the decision log
    /// are on disk (within `within`). Callable from any thread, also inside the runtime.
    pub fn stop(&self, within: Duration) -> bool {
        let (tx, rx) = std::sync::mpsc::channel();
        self.0.try_send(Order::Stop(tx)).is_ok() && rx.recv_timeout(within).is_ok()
    }
}

/// Spawns the control task on the current runtime; it waits for the first [`Order::Run`].
pub fn spawn(session: Session) -> Orders {
    let (tx, rx) = mpsc::channel(4);
    tokio::spawn(serve(session, rx));
    Orders(tx)
}

async fn serve(session: Session, mut orders: mpsc::Receiver<Order>) {
    let Session {
        mut controller,
        log,
        admin,
        admin_state,
    } = session;
    loop {
        match orders.recv().await {
            Some(Order::Run) => {}
            // Not running: nothing to stop.
            Some(Order::Stop(done)) => {
                let _ = done.send(());
                continue;
            }
            None => return,
        }
        let (stop_tx, stop_rx) = watch::channel(false);
        match admin
            .try_clone()
            .and_then(tokio::net::TcpListener::from_std)
        {
            Ok(listener) => {
                tokio::spawn(run_admin(listener, admin_state.clone(), stop_rx.clone()));
            }
            Err(e) => tracing::error!(error = %e, "cannot run the admin listener"),
        }
        let mut run = Box::pin(controller.run(stop_rx));
        // The controller only ends when told to; should it end anyway, the orders still count.
        let mut ended = None;
        let done = loop {
            tokio::select! {
                order = orders.recv() => match order {
                    Some(Order::Run) => continue,
                    Some(Order::Stop(done)) => break Some(done),
                    None => break None,
                },
                c = &mut run, if ended.is_none() => ended = Some(c),
            }
        };
        let _ = stop_tx.send(true);
        controller = match ended {
            Some(c) => c,
            None => run.await,
        };
        // The last decisions reach the file before anyone reads it again.
        let flushed = log.clone();
        let _ = tokio::task::spawn_blocking(move || flushed.flush(Duration::from_secs(1))).await;
        match done {
            Some(done) => {
                let _ = done.send(());
            }
            None => return,
        }
    }
}

/// The old process's side of `serve --upgrade` (see `canaryd_proxy::serve_upgrades`).
pub struct Upgrading {
    pub orders: Orders,
    pub stop: StopHandle,
}

impl UpgradeHooks for Upgrading {
    fn stop_control(&mut self) -> Result<(), String> {
        if self.orders.stop(STOP_WITHIN) {
            return Ok(());
        }
        // Whatever did stop runs again once it has.
        self.orders.run();
        Err(format!(
            "the controller did not persist its state within {}",
            humantime::format_duration(STOP_WITHIN)
        ))
    }

    fn resume_control(&mut self) {
        self.orders.run();
    }

    fn hand_over(&mut self) {
        self.stop.graceful();
    }
}

/// How long the controller may take to stop (a save and a flush of the decision log).
const STOP_WITHIN: Duration = Duration::from_secs(10);
