//! OCSF ids the sensor sets by name: the activities of each class it writes, launch and
//! injection types. vigil-event declares each class's activities as id and caption only;
//! the names here are checked against those captions by a test, so the two cannot drift.

/// Named ids of one OCSF enum: `NAME = id => "Caption"`, and the caption of an id.
macro_rules! named_ids {
    ($(#[$m:meta])* $module:ident {
        $($(#[$cm:meta])* $name:ident = $id:literal => $caption:literal),* $(,)?
    }) => {
        $(#[$m])*
        pub mod $module {
            $( #[doc = $caption] $(#[$cm])* pub const $name: i32 = $id; )*
            /// Every id with its caption.
            pub const ALL: &[(i32, &str)] = &[$(($id, $caption)),*];
            /// The caption of an id (`"Other"` for ids not named here).
            pub fn name(id: i32) -> &'static str {
                ALL.iter().find(|(i, _)| *i == id).map_or("Other", |(_, c)| c)
            }
        }
    };
}

named_ids!(
    /// Process Activity (1007) `activity_id`.
    process_activity {
        LAUNCH = 1 => "Launch", TERMINATE = 2 => "Terminate", OPEN = 3 => "Open",
        INJECT = 4 => "Inject", SET_USER_ID = 5 => "Set User ID", OTHER = 99 => "Other",
    }
);
named_ids!(
    /// File System Activity (1001) `activity_id`.
    file_activity {
        CREATE = 1 => "Create", UPDATE = 3 => "Update", DELETE = 4 => "Delete",
        RENAME = 5 => "Rename", SET_ATTRIBUTES = 6 => "Set Attributes",
        SET_SECURITY = 7 => "Set Security", MOUNT = 12 => "Mount", OPEN = 14 => "Open",
    }
);
named_ids!(
    /// Module Activity (1005) `activity_id`.
    module_activity { LOAD = 1 => "Load" }
);
named_ids!(
    /// Network Activity (4001) `activity_id`.
    network_activity { OPEN = 1 => "Open", FAIL = 4 => "Fail", REFUSE = 5 => "Refuse", LISTEN = 7 => "Listen" }
);
named_ids!(
    /// DNS Activity (4003) `activity_id`.
    dns_activity { QUERY = 1 => "Query" }
);
named_ids!(
    /// Event Log Activity (1008) `activity_id`: the sensor's own stream (Other: records
    /// lost, `Drop`, and the periodic `Statistics`).
    event_log_activity { START = 6 => "Start", STOP = 7 => "Stop", OTHER = 99 => "Other" }
);
named_ids!(
    /// Process Activity `launch_type_id`.
    launch_type {
        /// Both steps of Unix process creation in one event (a fork whose child execs).
        SPAWN = 1 => "Spawn", FORK = 2 => "Fork", EXEC = 3 => "Exec",
    }
);
named_ids!(
    /// Process Activity `injection_type_id`.
    injection_type { OTHER = 99 => "Other" }
);

#[cfg(test)]
mod tests {
    use super::*;
    use vigil_event::model::{
        DnsActivity, EventLogActivity, FileActivity, ModuleActivity, NetworkActivity, OcsfClass,
        ProcessActivity,
    };

    fn same<C: OcsfClass>(ids: &[(i32, &str)]) {
        for &(id, caption) in ids {
            assert_eq!(C::activity_name(id), caption, "{} {id}", C::CLASS_NAME);
        }
    }

    #[test]
    fn activity_names_are_the_classes_captions() {
        same::<ProcessActivity>(process_activity::ALL);
        same::<FileActivity>(file_activity::ALL);
        same::<ModuleActivity>(module_activity::ALL);
        same::<NetworkActivity>(network_activity::ALL);
        same::<DnsActivity>(dns_activity::ALL);
        same::<EventLogActivity>(event_log_activity::ALL);
        assert_eq!(launch_type::name(launch_type::SPAWN), "Spawn");
        assert_eq!(launch_type::name(0), "Other");
    }
}
