//! The event classes. Each `new` sets what the schema requires; the rest is filled by
//! the producer.

use super::*;

ocsf_class! {
    /// Process Activity (1007): a process launched, exited, was injected into, changed
    /// identity.
    pub struct ProcessActivity (
        1007, 1, "Process Activity",
        host_profile = [],
        activities = { 1 => "Launch", 2 => "Terminate", 3 => "Open", 4 => "Inject", 5 => "Set User ID" }
    ) {
        /// The process launched, terminated, opened or injected into.
        process: Process,
        /// Exit status of a terminated process.
        exit_code: Option<i32>,
        /// How the process was launched.
        launch_type_id: Option<i32>,
        /// Launch type caption.
        launch_type: Option<String>,
        /// The module injected, for Inject.
        module: Option<Module>,
        /// How code was injected, for Inject.
        injection_type_id: Option<i32>,
        /// Injection type caption (for Other: the mechanism, e.g. `process_vm_writev`).
        injection_type: Option<String>,
        /// Permissions requested, platform-specific (for example the new uid of a setuid).
        requested_permissions: Option<i32>,
    }
}

ocsf_class! {
    /// File System Activity (1001): a file created, written, renamed, deleted, changed.
    pub struct FileActivity (
        1001, 1, "File System Activity",
        host_profile = [],
        activities = {
            1 => "Create", 2 => "Read", 3 => "Update", 4 => "Delete", 5 => "Rename",
            6 => "Set Attributes", 7 => "Set Security", 8 => "Get Attributes", 9 => "Get Security",
            10 => "Encrypt", 11 => "Decrypt", 12 => "Mount", 13 => "Unmount", 14 => "Open"
        }
    ) {
        /// The file acted on (the source of a rename).
        file: File,
        /// The file as it is after the activity (the target of a rename or link).
        file_result: Option<File>,
        /// The mode a file was created with.
        create_mask: Option<String>,
        /// The component that performed the activity.
        component: Option<String>,
    }
}

ocsf_class! {
    /// Module Activity (1005): a shared object or kernel module loaded or unloaded.
    pub struct ModuleActivity (
        1005, 1, "Module Activity",
        host_profile = [],
        activities = { 1 => "Load", 2 => "Unload", 3 => "Invoke" }
    ) {
        /// The module.
        module: Module,
    }
}

ocsf_class! {
    /// Event Log Activity (1008): what happened to Vigil's own event stream: the sensor
    /// started or stopped, or records were lost (activity Other, named `Drop`).
    pub struct EventLogActivity (
        1008, 1, "Event Log Activity",
        host_profile = [],
        activities = {
            1 => "Clear", 2 => "Delete", 3 => "Export", 4 => "Archive", 5 => "Rotate",
            6 => "Start", 7 => "Stop", 8 => "Restart", 9 => "Enable", 10 => "Disable"
        }
    ) {
        /// The log: `vigil-sensor`.
        log_name: Option<String>,
        /// What feeds it: `ebpf` or `netlink+fanotify`.
        log_provider: Option<String>,
        /// Log type caption.
        log_type: Option<String>,
    }
}

ocsf_class! {
    /// Network Activity (4001): a connection opened, accepted, refused, a socket listening.
    pub struct NetworkActivity (
        4001, 4, "Network Activity",
        host_profile = [actor, device],
        activities = {
            1 => "Open", 2 => "Close", 3 => "Reset", 4 => "Fail", 5 => "Refuse",
            6 => "Traffic", 7 => "Listen"
        }
    ) {
        /// The initiator (the local side of a connect, the peer of an accept).
        src_endpoint: Option<NetworkEndpoint>,
        /// The responder.
        dst_endpoint: Option<NetworkEndpoint>,
        /// Protocol and direction.
        connection_info: Option<NetworkConnectionInfo>,
    }
}

ocsf_class! {
    /// DNS Activity (4003): a DNS query or response.
    pub struct DnsActivity (
        4003, 4, "DNS Activity",
        host_profile = [actor, device],
        activities = { 1 => "Query", 2 => "Response", 6 => "Traffic" }
    ) {
        /// The question.
        query: Option<DnsQuery>,
        /// The answers, for a response.
        answers: Vec<DnsAnswer>,
        /// The client.
        src_endpoint: Option<NetworkEndpoint>,
        /// The server.
        dst_endpoint: Option<NetworkEndpoint>,
        /// Protocol and direction.
        connection_info: Option<NetworkConnectionInfo>,
        /// Response code id.
        rcode_id: Option<i32>,
        /// Response code caption.
        rcode: Option<String>,
    }
}

ocsf_class! {
    /// Authentication (3002): a logon, logoff or account switch.
    pub struct Authentication (
        3002, 3, "Authentication",
        host_profile = [device],
        activities = {
            1 => "Logon", 2 => "Logoff", 3 => "Authentication Ticket", 4 => "Service Ticket Request",
            5 => "Service Ticket Renew", 6 => "Preauth", 7 => "Account Switch"
        }
    ) {
        /// The user authenticated.
        user: User,
        /// Where the attempt came from.
        src_endpoint: Option<NetworkEndpoint>,
        /// Where it was made to.
        dst_endpoint: Option<NetworkEndpoint>,
        /// Logon type ([`logon_type`]).
        logon_type_id: Option<i32>,
        /// Logon type caption.
        logon_type: Option<String>,
        /// Whether the logon was remote.
        is_remote: Option<bool>,
        /// The service authenticated to (`sshd`, `sudo`).
        service: Option<Service>,
        /// The session created.
        session: Option<Session>,
    }
}

ocsf_class! {
    /// Detection Finding (2004): a rule fired.
    pub struct DetectionFinding (
        2004, 2, "Detection Finding",
        host_profile = [actor],
        activities = { 1 => "Create", 2 => "Update", 3 => "Close" }
    ) {
        /// What was found, and by which rule.
        finding_info: FindingInfo,
        /// What it was found in.
        evidences: Vec<Evidences>,
        /// Confidence id.
        confidence_id: Option<i32>,
        /// Whether the finding is an alert.
        is_alert: Option<bool>,
        /// The indicators of compromise the finding is about (the `osint` profile).
        osint: Vec<Osint>,
    }
}

ocsf_class! {
    /// Incident Finding (2005): findings that belong together (on one host, one story)
    /// as one case to triage; created with its first finding, updated as more arrive.
    pub struct IncidentFinding (
        2005, 2, "Incident Finding",
        host_profile = [actor],
        activities = { 1 => "Create", 2 => "Update", 3 => "Close" },
        status = incident_status
    ) {
        /// The findings of the incident.
        finding_info_list: Vec<FindingInfo>,
        /// ATT&CK tactics and techniques of its findings.
        attacks: Vec<Attack>,
        /// What happened, in a sentence.
        desc: Option<String>,
        /// The group the incident is assigned to (Vigil's agent: the configured triage
        /// group).
        assignee_group: Option<Group>,
        /// Priority ([`priority`](crate::model::priority)).
        priority_id: Option<i32>,
        /// Priority caption.
        priority: Option<String>,
        /// Impact ([`priority`](crate::model::priority) ids).
        impact_id: Option<i32>,
        /// Impact caption.
        impact: Option<String>,
        /// Verdict ([`verdict`](crate::model::verdict)).
        verdict_id: Option<i32>,
        /// Verdict caption.
        verdict: Option<String>,
        /// Whether a breach is suspected.
        is_suspected_breach: Option<bool>,
        /// Where the incident can be seen.
        src_url: Option<String>,
    }
}

/// Declares a Remediation class (category 7, activities the D3FEND tactics): what Vigil
/// did on a host, whoever asked for it, and how it went.
macro_rules! remediation_class {
    ($(#[$m:meta])* $name:ident, $uid:expr, $caption:literal, $(#[$tm:meta])* $target:ident : $ty:ty) => {
        ocsf_class! {
            $(#[$m])*
            pub struct $name (
                $uid, 7, $caption,
                host_profile = [actor, device],
                activities = { 1 => "Isolate", 2 => "Evict", 3 => "Restore", 4 => "Harden", 5 => "Detect" },
                status = remediation_status
            ) {
                $(#[$tm])*
                $target: $ty,
                /// The id of the remediation command: one per action and target, so a
                /// repeated request for the same action names the same command.
                command_uid: String,
                /// The D3FEND countermeasures the action applies.
                countermeasures: Vec<D3fend>,
                /// What was (or would have been) done, in a sentence.
                remediation: Option<Remediation>,
            }
        }
    };
}

remediation_class!(
    /// File Remediation Activity (7002): a file moved into the quarantine vault, restored
    /// from it, or put back from the rollback journal.
    FileRemediationActivity, 7002, "File Remediation Activity",
    /// The file acted on.
    file: File
);
remediation_class!(
    /// Process Remediation Activity (7003): a process and its branch frozen and killed,
    /// or an executable refused before it ran.
    ProcessRemediationActivity, 7003, "Process Remediation Activity",
    /// The process acted on (for a refused exec: the process that asked).
    process: Process
);
remediation_class!(
    /// Network Remediation Activity (7004): the host cut off from the network (but for
    /// loopback and its management endpoints), or the isolation lifted.
    NetworkRemediationActivity, 7004, "Network Remediation Activity",
    /// The traffic the action is about (direction and protocol).
    connection_info: NetworkConnectionInfo
);

/// A fresh event's common part: time, severity, metadata for Vigil as producer.
fn base_metadata(feature: &str) -> Metadata {
    Metadata {
        version: Text::Borrowed(OCSF_VERSION),
        product: product(feature),
        ..Metadata::default()
    }
}

/// Vigil as the product reporting through `feature`: built once per feature and thread,
/// shared by every event.
fn product(feature: &str) -> Shared<Product> {
    thread_local! {
        static PRODUCTS: std::cell::RefCell<Vec<Shared<Product>>> =
            const { std::cell::RefCell::new(Vec::new()) };
    }
    PRODUCTS.with_borrow_mut(|cache| {
        let known = cache.iter().find(|p| {
            p.feature
                .as_ref()
                .and_then(|f| f.name.as_deref())
                .is_some_and(|n| n == feature)
        });
        if let Some(p) = known {
            return p.clone();
        }
        let p = Shared::new(Product {
            name: Some("Vigil".to_string()),
            vendor_name: Some("Vigil".to_string()),
            version: Some(env!("CARGO_PKG_VERSION").to_string()),
            feature: Some(Feature {
                name: Some(feature.to_string()),
                ..Feature::default()
            }),
            ..Product::default()
        });
        // Features are a handful of names; a caller making up new ones is not cached.
        if cache.len() < 16 {
            cache.push(p.clone());
        }
        p
    })
}

macro_rules! class_new {
    ($class:ident, $what:ident : $ty:ty) => {
        impl $class {
            /// A new event of this class: `activity_id`, time (ms since the epoch) and the
            /// attribute the class requires; `feature` names the Vigil component
            /// reporting it. Severity starts as Informational.
            pub fn new(activity_id: i32, time: i64, feature: &str, $what: $ty) -> Self {
                $class {
                    activity_id,
                    time,
                    severity_id: severity::INFORMATIONAL,
                    metadata: base_metadata(feature),
                    $what,
                    ..$class::default()
                }
            }
        }
    };
    ($class:ident) => {
        impl $class {
            /// A new event of this class: `activity_id`, time (ms since the epoch);
            /// `feature` names the Vigil component reporting it. Severity starts as
            /// Informational.
            pub fn new(activity_id: i32, time: i64, feature: &str) -> Self {
                $class {
                    activity_id,
                    time,
                    severity_id: severity::INFORMATIONAL,
                    metadata: base_metadata(feature),
                    ..$class::default()
                }
            }
        }
    };
}

class_new!(ProcessActivity, process: Process);
class_new!(FileActivity, file: File);
class_new!(ModuleActivity, module: Module);
class_new!(NetworkActivity);
class_new!(EventLogActivity);
class_new!(DnsActivity);
class_new!(Authentication, user: User);
class_new!(DetectionFinding, finding_info: FindingInfo);
class_new!(IncidentFinding);
class_new!(FileRemediationActivity, file: File);
class_new!(ProcessRemediationActivity, process: Process);
class_new!(NetworkRemediationActivity, connection_info: NetworkConnectionInfo);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_name_joins_class_and_activity_also_for_a_custom_activity() {
        let launch = OcsfEvent::from(ProcessActivity::new(1, 0, "t", Process::default()));
        assert_eq!(launch.to_json()["type_name"], "Process Activity: Launch");
        let mut drop = EventLogActivity::new(99, 0, "t");
        drop.activity_name = Some("Drop".into());
        let drop = OcsfEvent::from(drop).to_json();
        assert_eq!(drop["type_name"], "Event Log Activity: Drop");
        assert_eq!(drop["type_uid"], 100_899);
        let unknown = OcsfEvent::from(EventLogActivity::new(42, 0, "t")).to_json();
        assert_eq!(unknown["type_name"], "Event Log Activity: Other");
    }
}
