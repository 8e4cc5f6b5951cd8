//! `vigil isolate`: the host cut off the network (but for loopback and the management
//! endpoints) or let back on, and whether it is. Isolation outlasts the agent and its
//! restarts; an agent starting after a reboot puts back an isolation not lifted.

use crate::cmd::respond::{command_line, print_records, ConfigArg};
use anyhow::Result;
use clap::Subcommand;
use serde_json::{json, Map};
use std::process::ExitCode;
use vigil_event::model::remediation_status;
use vigil_respond::config::{Action, Mode};
use vigil_respond::isolate::Isolation;
use vigil_respond::record::{self, Cause, Common, Outcome};

/// `vigil isolate` subcommands.
#[derive(Debug, Subcommand)]
pub enum IsolateCommand {
    /// Cuts the host off: only loopback and the management endpoints stay reachable.
    On {
        #[command(flatten)]
        config: ConfigArg,
        /// Management endpoints, instead of the configuration's
        /// (`respond.isolate.management`): `192.0.2.10`, `192.0.2.0/24`,
        /// `192.0.2.10:8443`, `[2001:db8::10]:8443`.
        #[arg(long = "management", value_name = "ENDPOINT")]
        management: Vec<String>,
    },
    /// Lets the host back on the network.
    Off {
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Whether the host is isolated (exit 0 isolated, 1 not, 3 when the state and the
    /// kernel disagree or cannot be read).
    Status {
        #[command(flatten)]
        config: ConfigArg,
    },
}

fn rec(
    restore: bool,
    outcome: Outcome,
    management: &[String],
    line: &str,
) -> vigil_event::OcsfEvent {
    let mut extra = Map::new();
    extra.insert("management".into(), json!(management));
    record::network(Common {
        action: Action::Isolate,
        restore,
        mode: Mode::Protect,
        cause: Cause::Manual(line),
        command_uid: if restore {
            "isolate:off".into()
        } else {
            "isolate:host".into()
        },
        outcome,
        extra,
        time: vigil_event::time::now_ms(),
    })
}

/// Runs a `vigil isolate` subcommand.
pub fn run(cmd: IsolateCommand) -> Result<ExitCode> {
    let line = command_line();
    match cmd {
        IsolateCommand::On { config, management } => {
            let rc = config.load()?;
            let mgmt = if management.is_empty() {
                rc.isolate.management.clone()
            } else {
                management
            };
            let iso = Isolation::new(&rc.isolate.nft, &rc.state_dir);
            let outcome = match iso.on(&mgmt, &line, vigil_event::time::now_ms()) {
                Ok(()) => Outcome::success(format!(
                    "isolated the host: only loopback and {} management endpoint{} reachable",
                    mgmt.len(),
                    if mgmt.len() == 1 { "" } else { "s" }
                )),
                Err(e) => Outcome::failed(remediation_status::ERROR, e.to_string()),
            };
            print_records(&[rec(false, outcome, &mgmt, &line)])
        }
        IsolateCommand::Off { config } => {
            let rc = config.load()?;
            let iso = Isolation::new(&rc.isolate.nft, &rc.state_dir);
            let outcome = match iso.off() {
                Ok(true) => Outcome::success("lifted the isolation: the network is open again"),
                Ok(false) => Outcome::success("the host was not isolated"),
                Err(e) => Outcome::failed(remediation_status::ERROR, e.to_string()),
            };
            print_records(&[rec(true, outcome, &[], &line)])
        }
        IsolateCommand::Status { config } => {
            let rc = config.load()?;
            let iso = Isolation::new(&rc.isolate.nft, &rc.state_dir);
            let s = iso.status()?;
            match (&s.state, s.in_kernel) {
                (Some(st), true) => {
                    println!(
                        "isolated since {} (management: {}; reason: {})",
                        vigil_event::time::format_ms(st.since_ms),
                        if st.management.is_empty() {
                            "none".to_string()
                        } else {
                            st.management.join(", ")
                        },
                        st.reason
                    );
                    Ok(ExitCode::SUCCESS)
                }
                (None, false) => {
                    println!("not isolated");
                    Ok(ExitCode::from(crate::EXIT_CHECK_FAILED))
                }
                (Some(_), false) => {
                    println!(
                        "isolation asked for but not in the kernel (lost in a reboot?): the agent puts it back at its start, or run `vigil isolate on`"
                    );
                    Ok(ExitCode::from(crate::EXIT_RUNTIME_ERROR))
                }
                (None, true) => {
                    println!(
                        "the kernel has the isolation table but no state says why: `vigil isolate off` lifts it"
                    );
                    Ok(ExitCode::from(crate::EXIT_RUNTIME_ERROR))
                }
            }
        }
    }
}
