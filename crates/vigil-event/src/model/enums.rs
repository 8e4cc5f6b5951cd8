//! Ids of the OCSF enums Vigil sets, with their captions (from the OCSF 1.8.0 schema).

macro_rules! ocsf_enum {
    ($(#[$m:meta])* $mod:ident { $($(#[$cm:meta])* $name:ident = $id:literal => $caption:literal),* $(,)? }) => {
        $(#[$m])*
        pub mod $mod {
            $( $(#[$cm])* #[doc = $caption] pub const $name: i32 = $id; )*
            /// The caption of an id (`"Other"` for ids this enum does not define).
            pub fn name(id: i32) -> &'static str {
                match id { $( $id => $caption, )* _ => "Other" }
            }
        }
    };
}

ocsf_enum!(
    /// `severity_id`.
    severity {
        UNKNOWN = 0 => "Unknown", INFORMATIONAL = 1 => "Informational", LOW = 2 => "Low",
        MEDIUM = 3 => "Medium", HIGH = 4 => "High", CRITICAL = 5 => "Critical",
        FATAL = 6 => "Fatal", OTHER = 99 => "Other",
    }
);
ocsf_enum!(
    /// `status_id`.
    status { UNKNOWN = 0 => "Unknown", SUCCESS = 1 => "Success", FAILURE = 2 => "Failure", OTHER = 99 => "Other" }
);
ocsf_enum!(
    /// `os.type_id`.
    os_type { UNKNOWN = 0 => "Unknown", WINDOWS = 100 => "Windows", LINUX = 200 => "Linux", MACOS = 300 => "macOS", OTHER = 99 => "Other" }
);
ocsf_enum!(
    /// `device.type_id`.
    device_type { UNKNOWN = 0 => "Unknown", SERVER = 1 => "Server", DESKTOP = 2 => "Desktop", LAPTOP = 3 => "Laptop", VIRTUAL = 6 => "Virtual", OTHER = 99 => "Other" }
);
ocsf_enum!(
    /// `file.type_id`.
    file_type {
        UNKNOWN = 0 => "Unknown", REGULAR = 1 => "Regular File", FOLDER = 2 => "Folder",
        CHARACTER_DEVICE = 3 => "Character Device", BLOCK_DEVICE = 4 => "Block Device",
        LOCAL_SOCKET = 5 => "Local Socket", NAMED_PIPE = 6 => "Named Pipe",
        SYMBOLIC_LINK = 7 => "Symbolic Link", EXECUTABLE = 8 => "Executable File", OTHER = 99 => "Other",
    }
);
ocsf_enum!(
    /// `fingerprint.algorithm_id`.
    hash_algorithm { UNKNOWN = 0 => "Unknown", MD5 = 1 => "MD5", SHA1 = 2 => "SHA-1", SHA256 = 3 => "SHA-256", SHA512 = 4 => "SHA-512", OTHER = 99 => "Other" }
);
ocsf_enum!(
    /// `user.type_id`.
    user_type { UNKNOWN = 0 => "Unknown", USER = 1 => "User", ADMIN = 2 => "Admin", SYSTEM = 3 => "System", SERVICE = 4 => "Service", OTHER = 99 => "Other" }
);
ocsf_enum!(
    /// `connection_info.direction_id`.
    direction { UNKNOWN = 0 => "Unknown", INBOUND = 1 => "Inbound", OUTBOUND = 2 => "Outbound", LATERAL = 3 => "Lateral", LOCAL = 4 => "Local", OTHER = 99 => "Other" }
);
ocsf_enum!(
    /// `connection_info.protocol_ver_id`.
    protocol_version { UNKNOWN = 0 => "Unknown", IPV4 = 4 => "Internet Protocol version 4 (IPv4)", IPV6 = 6 => "Internet Protocol version 6 (IPv6)", OTHER = 99 => "Other" }
);
ocsf_enum!(
    /// `dns_query.opcode_id`.
    dns_opcode { QUERY = 0 => "Query", INVERSE_QUERY = 1 => "Inverse Query", STATUS = 2 => "Status", NOTIFY = 4 => "Notify", UPDATE = 5 => "Update", OTHER = 99 => "Other" }
);
ocsf_enum!(
    /// `module.load_type_id`.
    module_load_type { STANDARD = 1 => "Standard", NON_STANDARD = 2 => "Non Standard", SHELLCODE = 3 => "ShellCode", MAPPED = 4 => "Mapped" }
);
ocsf_enum!(
    /// `analytic.type_id`.
    analytic_type { UNKNOWN = 0 => "Unknown", RULE = 1 => "Rule", BEHAVIORAL = 2 => "Behavioral", STATISTICAL = 3 => "Statistical", EXACT_DATA_MATCH = 9 => "Exact Data Match", OTHER = 99 => "Other" }
);
ocsf_enum!(
    /// `osint.type_id`: what an indicator is.
    osint_type { UNKNOWN = 0 => "Unknown", IP_ADDRESS = 1 => "IP Address", DOMAIN = 2 => "Domain", HOSTNAME = 3 => "Hostname", HASH = 4 => "Hash", URL = 5 => "URL", OTHER = 99 => "Other" }
);
ocsf_enum!(
    /// `osint.detection_pattern_type_id`.
    detection_pattern_type { UNKNOWN = 0 => "Unknown", STIX = 1 => "STIX", OTHER = 99 => "Other" }
);
ocsf_enum!(
    /// `logon_type_id`.
    logon_type {
        UNKNOWN = 0 => "Unknown", SYSTEM = 1 => "System", INTERACTIVE = 2 => "Interactive",
        NETWORK = 3 => "Network", BATCH = 4 => "Batch", OS_SERVICE = 5 => "OS Service",
        REMOTE_INTERACTIVE = 10 => "Remote Interactive", OTHER = 99 => "Other",
    }
);
ocsf_enum!(
    /// `observable.type_id` (the `observable` numbers of the OCSF dictionary types).
    observable_type {
        UNKNOWN = 0 => "Unknown", HOSTNAME = 1 => "Hostname", IP_ADDRESS = 2 => "IP Address",
        USER_NAME = 4 => "User Name", FILE_HASH = 8 => "Hash", FILE_NAME = 7 => "File Name",
        PROCESS_NAME = 9 => "Process Name", COMMAND_LINE = 13 => "Command Line", OTHER = 99 => "Other",
    }
);
ocsf_enum!(
    /// Incident Finding's `status_id`: where the incident is in its triage.
    incident_status {
        UNKNOWN = 0 => "Unknown", NEW = 1 => "New", IN_PROGRESS = 2 => "In Progress",
        ON_HOLD = 3 => "On Hold", RESOLVED = 4 => "Resolved", CLOSED = 5 => "Closed", OTHER = 99 => "Other",
    }
);
ocsf_enum!(
    /// `verdict_id` of an incident.
    verdict {
        UNKNOWN = 0 => "Unknown", FALSE_POSITIVE = 1 => "False Positive", TRUE_POSITIVE = 2 => "True Positive",
        DISREGARD = 3 => "Disregard", SUSPICIOUS = 4 => "Suspicious", BENIGN = 5 => "Benign", TEST = 6 => "Test",
        INSUFFICIENT_DATA = 7 => "Insufficient Data", SECURITY_RISK = 8 => "Security Risk", OTHER = 99 => "Other",
    }
);
ocsf_enum!(
    /// `priority_id` and `impact_id` of an incident.
    priority { UNKNOWN = 0 => "Unknown", LOW = 1 => "Low", MEDIUM = 2 => "Medium", HIGH = 3 => "High", CRITICAL = 4 => "Critical", OTHER = 99 => "Other" }
);
ocsf_enum!(
    /// Remediation Activity's `status_id`: how the action went.
    remediation_status {
        UNKNOWN = 0 => "Unknown", SUCCESS = 1 => "Success", FAILURE = 2 => "Failure",
        DOES_NOT_EXIST = 3 => "Does Not Exist", PARTIAL = 4 => "Partial",
        UNSUPPORTED = 5 => "Unsupported", ERROR = 6 => "Error", OTHER = 99 => "Other",
    }
);
ocsf_enum!(
    /// Remediation Activity's `activity_id`: the D3FEND tactic of the action.
    remediation_activity { ISOLATE = 1 => "Isolate", EVICT = 2 => "Evict", RESTORE = 3 => "Restore", HARDEN = 4 => "Harden", DETECT = 5 => "Detect" }
);
