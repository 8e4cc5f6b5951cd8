//! The OCSF objects Vigil's events are made of (a subset of each object's attributes:
//! those Vigil fills; the schema allows more).

use super::Shared;
use serde_json::{Map, Value as Json};

ocsf_object! {
    /// `product`: the product that reported the event.
    pub struct Product {
        /// Product name (`Vigil`).
        name: Option<String>,
        /// Vendor name.
        vendor_name: Option<String>,
        /// Product version.
        version: Option<String>,
        /// Product unique id.
        uid: Option<String>,
        /// The component that made the event (`sensor`, `hunt`, ...).
        feature: Option<Feature>,
    }
}

ocsf_object! {
    /// `feature`: the part of a product that made the event.
    pub struct Feature {
        /// Feature name.
        name: Option<String>,
        /// Feature version.
        version: Option<String>,
        /// Feature unique id.
        uid: Option<String>,
    }
}

ocsf_object! {
    /// `metadata`: how the event came to be.
    pub struct Metadata {
        /// The OCSF schema version the event conforms to.
        version: super::Text,
        /// The reporting product.
        product: Shared<Product>,
        /// The event's unique id.
        uid: Option<String>,
        /// Profiles the event uses (`host`, `container`, `security_control`, ...).
        profiles: Vec<String>,
        /// When Vigil logged the event (ms since the epoch).
        logged_time: Option<i64>,
        /// The source's own time text, verbatim.
        original_time: Option<String>,
        /// The source's event id (a Windows event id, a syscall name).
        event_code: Option<String>,
        /// The log the event was read from (a Windows channel, a file path).
        log_name: Option<String>,
        /// The provider that wrote the source record.
        log_provider: Option<String>,
        /// Where in its source the record was (file and record number).
        source: Option<String>,
        /// Sequence number of the event from its producer.
        sequence: Option<i32>,
        /// Id shared by related events (a storyline).
        correlation_uid: Option<String>,
        /// Free-form labels.
        labels: Vec<String>,
    }
}

ocsf_object! {
    /// `os`: an operating system.
    pub struct Os {
        /// OS name (`Linux`, `Debian GNU/Linux 12`).
        name: String,
        /// OS type ([`os_type`](crate::model::os_type)).
        type_id: i32,
        /// OS type caption.
        kind as "type": Option<String>,
        /// OS version.
        version: Option<String>,
        /// Kernel release (`uname -r`).
        kernel_release: Option<String>,
        /// CPU bitness.
        cpu_bits: Option<i32>,
    }
}

ocsf_object! {
    /// `device`: the host an event happened on.
    pub struct Device {
        /// Device type ([`device_type`](crate::model::device_type)).
        type_id: i32,
        /// Device type caption.
        kind as "type": Option<String>,
        /// Host name.
        hostname: Option<String>,
        /// Device name.
        name: Option<String>,
        /// Stable device id (machine id).
        uid: Option<String>,
        /// Primary IP address.
        ip: Option<String>,
        /// Operating system.
        os: Option<Os>,
        /// Boot time (ms since the epoch).
        boot_time: Option<i64>,
        /// Boot id (`/proc/sys/kernel/random/boot_id`).
        boot_uid: Option<String>,
        /// Domain.
        domain: Option<String>,
    }
}

ocsf_object! {
    /// `fingerprint`: a hash of a file or other data.
    pub struct Fingerprint {
        /// Hash algorithm ([`hash_algorithm`](crate::model::hash_algorithm)).
        algorithm_id: i32,
        /// Hash algorithm caption.
        algorithm: Option<String>,
        /// The hash, lower-case hex.
        value: String,
    }
}

ocsf_object! {
    /// `user`: an account.
    pub struct User {
        /// User name.
        name: Option<String>,
        /// User id (the numeric uid on Linux, a SID on Windows).
        uid: Option<String>,
        /// Domain.
        domain: Option<String>,
        /// User type ([`user_type`](crate::model::user_type)).
        type_id: Option<i32>,
        /// User type caption.
        kind as "type": Option<String>,
        /// Full name.
        full_name: Option<String>,
        /// Groups the user belongs to.
        groups: Vec<Group>,
    }
}

ocsf_object! {
    /// `group`: a group of users.
    pub struct Group {
        /// Group name.
        name: Option<String>,
        /// Group id.
        uid: Option<String>,
    }
}

ocsf_object! {
    /// `file`: a file, by path, with its hashes and attributes.
    pub struct File {
        /// File name (last path component).
        name: String,
        /// File type ([`file_type`](crate::model::file_type)).
        type_id: i32,
        /// File type caption.
        kind as "type": Option<String>,
        /// Full path.
        path: Option<String>,
        /// Containing directory.
        parent_folder: Option<String>,
        /// Hashes of the content.
        hashes: Vec<Fingerprint>,
        /// Size in bytes.
        size: Option<i64>,
        /// Unique id (`dev:inode` on Linux).
        uid: Option<String>,
        /// Owner.
        owner: Option<User>,
        /// Creation time (ms since the epoch).
        created_time: Option<i64>,
        /// Modification time (ms since the epoch).
        modified_time: Option<i64>,
        /// Last access time (ms since the epoch).
        accessed_time: Option<i64>,
        /// Platform attribute bits (the POSIX mode on Linux).
        attributes: Option<i32>,
        /// MIME type.
        mime_type: Option<String>,
        /// Whether the file has been deleted.
        is_deleted: Option<bool>,
        /// Extended attributes.
        xattributes: Option<Map<String, Json>>,
    }
}

ocsf_object! {
    /// `session`: a login session.
    pub struct Session {
        /// Session id.
        uid: Option<String>,
        /// Controlling terminal.
        terminal: Option<String>,
        /// Whether the session is remote.
        is_remote: Option<bool>,
        /// Session start (ms since the epoch).
        created_time: Option<i64>,
    }
}

ocsf_object! {
    /// `container`: a container a process runs in (profile `container`).
    pub struct Container {
        /// Container id.
        uid: Option<String>,
        /// Container name.
        name: Option<String>,
        /// Container runtime.
        runtime: Option<String>,
    }
}

ocsf_object! {
    /// `environment_variable`: one variable of a process environment.
    pub struct EnvironmentVariable {
        /// Variable name.
        name: String,
        /// Variable value.
        value: String,
    }
}

ocsf_object! {
    /// `process_entity`: a short form of a process, used in `ancestry`.
    pub struct ProcessEntity {
        /// Process id.
        pid: Option<i32>,
        /// Vigil's stable process uid (boot id, pid and start time).
        uid: Option<String>,
        /// Process name.
        name: Option<String>,
        /// Executable path.
        path: Option<String>,
        /// Command line.
        cmd_line: Option<String>,
        /// Start time (ms since the epoch).
        created_time: Option<i64>,
    }
}

ocsf_object! {
    /// `process`: a running program, with its parent chain.
    pub struct Process {
        /// Process id.
        pid: Option<i32>,
        /// Thread id.
        tid: Option<i32>,
        /// Vigil's stable process uid (boot id, pid and start time): survives pid reuse.
        uid: Option<String>,
        /// Process name (comm).
        name: Option<String>,
        /// Full command line, arguments joined by spaces.
        cmd_line: Option<String>,
        /// The executable.
        file: Option<File>,
        /// The parent process (without its own lineage: that is `ancestry`).
        parent_process: Option<Shared<Process>>,
        /// The ancestors, nearest first (the first is the parent).
        ancestry: Vec<Shared<ProcessEntity>>,
        /// The user the process runs as.
        user: Option<Shared<User>>,
        /// Working directory.
        working_directory: Option<String>,
        /// Start time (ms since the epoch).
        created_time: Option<i64>,
        /// Exit time (ms since the epoch).
        terminated_time: Option<i64>,
        /// Login session.
        session: Option<Session>,
        /// Environment variables.
        environment_variables: Vec<EnvironmentVariable>,
        /// Container (profile `container`).
        container: Option<Container>,
        /// Process id inside its pid namespace (profile `container`).
        namespace_pid: Option<i32>,
        /// Integrity level (Windows).
        integrity: Option<String>,
        /// Extended attributes: Linux credentials and capabilities, how it was started or
        /// ended.
        xattributes: Option<ProcessXattributes>,
    }
}

ocsf_object! {
    /// The `xattributes` Vigil writes for a Linux process: what OCSF's process object has
    /// no attribute for.
    pub struct ProcessXattributes {
        /// Group id.
        gid: Option<u32>,
        /// Effective user id.
        euid: Option<u32>,
        /// Effective group id.
        egid: Option<u32>,
        /// Saved user id.
        suid: Option<u32>,
        /// Saved group id.
        sgid: Option<u32>,
        /// Filesystem user id.
        fsuid: Option<u32>,
        /// Filesystem group id.
        fsgid: Option<u32>,
        /// Login (audit) user id, when set.
        loginuid: Option<u32>,
        /// Effective capabilities.
        cap_effective: Option<Caps>,
        /// Permitted capabilities.
        cap_permitted: Option<Caps>,
        /// Inheritable capabilities.
        cap_inheritable: Option<Caps>,
        /// The file name the exec was asked for (e.g. `/proc/self/fd/3`).
        filename: Option<String>,
        /// The cgroup's kernel id.
        cgroup_id: Option<u64>,
        /// The cgroup's path.
        cgroup: Option<String>,
        /// What is unusual about the exec (`argv_truncated`, `fileless`, ...).
        flags: Vec<super::Text>,
        /// The signal that ended the process.
        signal: Option<i32>,
        /// Whether it dumped core.
        core_dumped: Option<bool>,
    }
}

/// A Linux capability set, written as hex text (`0x000001ffffffffff`) as `/proc` shows it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Caps(pub u64);

impl std::fmt::Display for Caps {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:#018x}", self.0)
    }
}

impl serde::Serialize for Caps {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Caps {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        let digits = text.strip_prefix("0x").unwrap_or(&text);
        u64::from_str_radix(digits, 16)
            .map(Caps)
            .map_err(|_| serde::de::Error::custom(format!("not a capability set: {text}")))
    }
}

impl crate::access::Fields for Caps {
    fn field_at<'a>(
        &'a self,
        path: &crate::value::FieldPath,
        i: usize,
    ) -> Option<crate::value::Value<'a>> {
        (i == path.len()).then(|| crate::value::Value::Str(self.to_string().into()))
    }
    fn visit_strs<'a>(&'a self, _f: &mut dyn FnMut(&'a str)) {}
}

ocsf_object! {
    /// `actor`: who performed an activity.
    pub struct Actor {
        /// The acting process.
        process: Option<Shared<Process>>,
        /// The acting user.
        user: Option<Shared<User>>,
        /// The acting session.
        session: Option<Session>,
        /// The application name.
        app_name: Option<String>,
    }
}

ocsf_object! {
    /// `network_endpoint`: one side of a connection.
    pub struct NetworkEndpoint {
        /// IP address (v4 or v6).
        ip: Option<String>,
        /// Port.
        port: Option<i32>,
        /// Host name.
        hostname: Option<String>,
        /// Domain.
        domain: Option<String>,
        /// Endpoint name.
        name: Option<String>,
        /// Endpoint id.
        uid: Option<String>,
        /// Service name.
        svc_name: Option<String>,
    }
}

ocsf_object! {
    /// `network_connection_info`: protocol and direction of a connection.
    pub struct NetworkConnectionInfo {
        /// Direction ([`direction`](crate::model::direction)).
        direction_id: i32,
        /// Direction caption.
        direction: Option<String>,
        /// Protocol name (`tcp`, `udp`).
        protocol_name: Option<String>,
        /// IANA protocol number.
        protocol_num: Option<i32>,
        /// IP version ([`protocol_version`](crate::model::protocol_version)).
        protocol_ver_id: Option<i32>,
        /// IP version caption.
        protocol_ver: Option<String>,
        /// Connection id.
        uid: Option<String>,
    }
}

ocsf_object! {
    /// `dns_query`: the question of a DNS message.
    pub struct DnsQuery {
        /// The name asked for.
        hostname: String,
        /// Record type (`A`, `AAAA`, `TXT`, ...).
        kind as "type": Option<String>,
        /// Class (`IN`).
        class: Option<String>,
        /// DNS message id.
        packet_uid: Option<i32>,
        /// Opcode ([`dns_opcode`](crate::model::dns_opcode)).
        opcode_id: Option<i32>,
        /// Opcode caption.
        opcode: Option<String>,
    }
}

ocsf_object! {
    /// `dns_answer`: one resource record of a DNS response.
    pub struct DnsAnswer {
        /// Record data.
        rdata: String,
        /// Record type.
        kind as "type": Option<String>,
        /// Class.
        class: Option<String>,
        /// Time to live.
        ttl: Option<i32>,
        /// DNS message id.
        packet_uid: Option<i32>,
    }
}

ocsf_object! {
    /// `module`: a loaded module (shared object or kernel module).
    pub struct Module {
        /// The module's file.
        file: Option<File>,
        /// How it was loaded ([`module_load_type`](crate::model::module_load_type)).
        load_type_id: Option<i32>,
        /// Load type caption.
        load_type: Option<String>,
        /// Module type (`kernel module`, `shared library`).
        kind as "type": Option<String>,
        /// Load address.
        base_address: Option<String>,
        /// Function name, for invocations.
        function_name: Option<String>,
    }
}

ocsf_object! {
    /// `tactic`: a MITRE ATT&CK tactic.
    pub struct Tactic {
        /// Tactic name (`Execution`).
        name: Option<String>,
        /// Tactic id (`TA0002`).
        uid: Option<String>,
    }
}

ocsf_object! {
    /// `technique`: a MITRE ATT&CK technique.
    pub struct Technique {
        /// Technique name.
        name: Option<String>,
        /// Technique id (`T1059`).
        uid: Option<String>,
    }
}

ocsf_object! {
    /// `sub_technique`: a MITRE ATT&CK sub-technique.
    pub struct SubTechnique {
        /// Sub-technique name.
        name: Option<String>,
        /// Sub-technique id (`T1059.004`).
        uid: Option<String>,
    }
}

ocsf_object! {
    /// `attack`: one ATT&CK classification of a finding.
    pub struct Attack {
        /// The tactic.
        tactic: Option<Tactic>,
        /// The technique.
        technique: Option<Technique>,
        /// The sub-technique.
        sub_technique: Option<SubTechnique>,
        /// ATT&CK version.
        version: Option<String>,
    }
}

ocsf_object! {
    /// `analytic`: the rule that produced a finding.
    pub struct Analytic {
        /// Analytic type ([`analytic_type`](crate::model::analytic_type)).
        type_id: i32,
        /// Analytic type caption.
        kind as "type": Option<String>,
        /// Rule id (a Sigma rule's `id`).
        uid: Option<String>,
        /// Rule name.
        name: Option<String>,
        /// Rule category (the Sigma logsource).
        category: Option<String>,
        /// Rule description.
        desc: Option<String>,
        /// Rule version or modification date.
        version: Option<String>,
    }
}

ocsf_object! {
    /// `related_event`: an event a finding refers to.
    pub struct RelatedEvent {
        /// The event's uid.
        uid: String,
        /// The event's type uid.
        type_uid: Option<i64>,
        /// The event's type.
        kind as "type": Option<String>,
    }
}

ocsf_object! {
    /// `finding_info`: what a detection found.
    pub struct FindingInfo {
        /// Finding id.
        uid: String,
        /// Title (the rule title).
        title: Option<String>,
        /// Description.
        desc: Option<String>,
        /// The rule that fired.
        analytic: Option<Analytic>,
        /// ATT&CK classification.
        attacks: Vec<Attack>,
        /// Finding types (`Sigma`, `YARA`, `IOC`).
        types: Vec<String>,
        /// When the finding was made (ms since the epoch).
        created_time: Option<i64>,
        /// Time of the earliest event in the finding.
        first_seen_time: Option<i64>,
        /// Time of the latest event in the finding.
        last_seen_time: Option<i64>,
        /// When the finding was last changed (ms since the epoch).
        modified_time: Option<i64>,
        /// Where the rule comes from.
        src_url: Option<String>,
        /// Data sources the finding was made from (file names).
        data_sources: Vec<String>,
        /// Events the finding refers to.
        related_events: Vec<RelatedEvent>,
        /// Number of related events.
        related_events_count: Option<i32>,
    }
}

ocsf_object! {
    /// `evidences`: what a finding was made from.
    pub struct Evidences {
        /// Evidence name.
        name: Option<String>,
        /// Evidence id.
        uid: Option<String>,
        /// The actor involved.
        actor: Option<Actor>,
        /// The process involved.
        process: Option<Process>,
        /// The file involved.
        file: Option<File>,
        /// The source endpoint.
        src_endpoint: Option<NetworkEndpoint>,
        /// The destination endpoint.
        dst_endpoint: Option<NetworkEndpoint>,
        /// The DNS query.
        query: Option<DnsQuery>,
        /// The user involved.
        user: Option<User>,
        /// The matched event itself, all its fields.
        data: Option<Json>,
    }
}

ocsf_object! {
    /// `observable`: a value worth indexing.
    pub struct Observable {
        /// Observable type ([`observable_type`](crate::model::observable_type)).
        type_id: i32,
        /// Observable type caption.
        kind as "type": Option<String>,
        /// The attribute path it came from.
        name: Option<String>,
        /// The value.
        value: Option<String>,
    }
}

ocsf_object! {
    /// `service`: a service authenticated to.
    pub struct Service {
        /// Service name.
        name: Option<String>,
        /// Service id.
        uid: Option<String>,
    }
}

ocsf_object! {
    /// `d3fend`: a MITRE D3FEND countermeasure.
    pub struct D3fend {
        /// The defensive tactic (`Evict`, `Isolate`, `Restore`).
        d3f_tactic: Option<D3fTactic>,
        /// The defensive technique (`D3-PT` Process Termination).
        d3f_technique: Option<D3fTechnique>,
        /// The D3FEND version.
        version: Option<String>,
    }
}

ocsf_object! {
    /// `d3f_tactic`: a D3FEND tactic.
    pub struct D3fTactic {
        /// Tactic name.
        name: Option<String>,
        /// Tactic id.
        uid: Option<String>,
    }
}

ocsf_object! {
    /// `d3f_technique`: a D3FEND technique.
    pub struct D3fTechnique {
        /// Technique name (`Process Termination`).
        name: Option<String>,
        /// Technique id (`D3-PT`).
        uid: Option<String>,
    }
}

ocsf_object! {
    /// `remediation`: the remediation's description.
    pub struct Remediation {
        /// What was done, or would have been.
        desc: String,
    }
}

ocsf_object! {
    /// `osint`: an indicator of compromise, and what its source says of it.
    pub struct Osint {
        /// The indicator: a hash, an address or network, a domain.
        value: String,
        /// What the indicator is ([`osint_type`](crate::model::osint_type)).
        type_id: i32,
        /// Its caption.
        kind as "type": Option<String>,
        /// The indicator's id in its source (a STIX id, a MISP attribute uuid).
        uid: Option<String>,
        /// Its name in its source.
        name: Option<String>,
        /// Where it comes from (the source file).
        src_url: Option<String>,
        /// A comment (what matched it).
        comment: Option<String>,
        /// The pattern it came from (a STIX pattern).
        detection_pattern: Option<String>,
        /// The pattern's type ([`detection_pattern_type`](crate::model::detection_pattern_type)).
        detection_pattern_type_id: Option<i32>,
        /// Its caption.
        detection_pattern_type: Option<String>,
    }
}
