//! Regression: a record's unnamed `<Data>` elements (MSSQL and other Application log
//! records), which `evtx` renders as `"Data": {"#text": ["a", "b", ..]}`, never matched a
//! rule's `Data|contains`. So the filter of "MSSQL Server Failed Logon From External
//! Network" (`Data|contains: 'CLIENT: 10.'`, ...) excluded nothing and the rule fired on
//! failed logons from the local network, while the Ntdsutil, xp_cmdshell, SQL audit,
//! MSI-from-the-web and Exchange transport agent rules never fired on their samples.
//!
//! The samples are the shared EVTX corpus's own files, read as `vigil hunt` reads them,
//! matched through `JsonEvent` (as `vigil hunt` does) and through `serde_json::Value`
//! wrapped in `WinRecord`, which must agree.

mod support;

use std::collections::BTreeMap;
use vigil_sigma::{EventKind, JsonEvent, WinRecord};

/// (sample file under the EVTX corpus, rule id, findings on its records).
const FIRE: &[(&str, &str, usize)] = &[
    (
        "EVTX-ATTACK-SAMPLES/Credential Access/dc_applog_ntdsutil_dfir_325_326_327.evtx",
        "94dc4390-6b7c-4784-8ffc-335334404650", // Dump Ntds.dit To Suspicious Location
        1,
    ),
    (
        "EVTX-ATTACK-SAMPLES/Credential Access/dc_applog_ntdsutil_dfir_325_326_327.evtx",
        "e6e88853-5f20-4c4a-8d26-cd469fd8d31f", // Ntdsutil Abuse
        4,
    ),
    (
        "EVTX-ATTACK-SAMPLES/Defense Evasion/DE_xp_cmdshell_enabled_MSSQL_EID_15457.evtx",
        "d08dd86f-681e-4a00-a92c-1db218754417", // MSSQL XPCmdshell Option Change
        2,
    ),
    (
        "EVTX-ATTACK-SAMPLES/Execution/rogue_msi_url_1040_1042.evtx",
        "5594e67a-7f92-4a04-b65d-1a42fd824a60", // MSI Installation From Web
        2,
    ),
    (
        "EVTX-ATTACK-SAMPLES/Lateral Movement/LM_xp_cmdshell_MSSQL_Events.evtx",
        "7f103213-a04e-4d59-8261-213dddf22314", // MSSQL XPCmdshell Suspicious Execution
        1,
    ),
    (
        "EVTX-ATTACK-SAMPLES/Lateral Movement/LM_xp_cmdshell_MSSQL_Events.evtx",
        "d08dd86f-681e-4a00-a92c-1db218754417",
        2,
    ),
    (
        "hayabusa-sample-evtx/DeepBlueCLI/many-events-application.evtx",
        "c7c8aa1c-5aff-408e-828b-998e3620b341", // MSI Installation From Suspicious Locations
        4,
    ),
    (
        "hayabusa-sample-evtx/EVTX-to-MITRE-Attack/TA0003-Persistence/T1098.xxx-Account manipulation/ID33205-SQL Server member added to server role.evtx",
        "08200f85-2678-463e-9c32-88dce2f073d1", // MSSQL Add Account To Sysadmin Role
        1,
    ),
    (
        "hayabusa-sample-evtx/EVTX-to-MITRE-Attack/TA0003-Persistence/T1505-Server Software Component/ID6-Failed to install an Exchange transport agent.evtx",
        "c7d16cae-aaf3-42e5-9c1c-fb8553faa6fa", // Failed MSExchange Transport Agent Installation
        2,
    ),
    (
        "hayabusa-sample-evtx/EVTX-to-MITRE-Attack/TA0003-Persistence/T1505.001-SQL Stored Procedures/ID15457-SQL Server CMDshell enabled.evtx",
        "d08dd86f-681e-4a00-a92c-1db218754417",
        1,
    ),
    (
        "hayabusa-sample-evtx/EVTX-to-MITRE-Attack/TA0005-Defense Evasion/T1562.002-Disable Windows Event Logging/ID33205-SQL Server  audit object disabled.evtx",
        "350dfb37-3706-4cdc-9e2e-5e24bc3a46df", // MSSQL Disable Audit Settings
        1,
    ),
    (
        "hayabusa-sample-evtx/EVTX-to-MITRE-Attack/TA0005-Defense Evasion/T1562.002-Disable Windows Event Logging/ID33205-SQL Server audit object deleted.evtx",
        "350dfb37-3706-4cdc-9e2e-5e24bc3a46df",
        2,
    ),
    (
        "hayabusa-sample-evtx/EVTX-to-MITRE-Attack/TA0005-Defense Evasion/T1562.002-Disable Windows Event Logging/ID33205-SQL Server audit specification deleted.evtx",
        "350dfb37-3706-4cdc-9e2e-5e24bc3a46df",
        2,
    ),
    (
        "hayabusa-sample-evtx/EVTX-to-MITRE-Attack/TA0005-Defense Evasion/T1562.002-Disable Windows Event Logging/ID33205-SQL Server audit specification disabled.evtx",
        "350dfb37-3706-4cdc-9e2e-5e24bc3a46df",
        1,
    ),
    (
        "hayabusa-sample-evtx/EVTX-to-MITRE-Attack/TA0006-Credential Access/T1003-Credential dumping/ID325-327-IFM created - ESENT.evtx",
        "e6e88853-5f20-4c4a-8d26-cd469fd8d31f",
        4,
    ),
];

/// "MSSQL Server Failed Logon From External Network".
const MSSQL_EXTERNAL: &str = "ebfe73c2-5bc9-4ed9-aaa8-8b54b2b4777d";

/// Failed MSSQL logons (EventID 18456) from clients in 10.0.0.0/8 only: the rule's filter
/// must exclude every one of them.
const LOCAL_FAILED_LOGONS: &[(&str, usize)] = &[
    (
        "EVTX-ATTACK-SAMPLES/Credential Access/MSSQL_multiple_failed_logon_EventID_18456.evtx",
        10,
    ),
    (
        "hayabusa-sample-evtx/EVTX-to-MITRE-Attack/TA0006-Credential Access/T1110.xxx-Brut force/ID18456-SQL Server failed login because only Windows auth.evtx",
        6,
    ),
];

/// Rule id -> findings over the records of one file, matched through `JsonEvent`; the
/// same records as `serde_json::Value` in a `WinRecord` must find the same.
fn findings_of(engine: &vigil_sigma::Engine, file: &std::path::Path) -> BTreeMap<String, usize> {
    let mut scratch = engine.scratch();
    let mut counts = BTreeMap::new();
    for (i, text) in support::evtx_records(file).iter().enumerate() {
        let mut ours = Vec::new();
        let event = JsonEvent::parse(text).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        engine.match_event(&mut scratch, &event, EventKind::Windows, &mut ours);
        let value: serde_json::Value = serde_json::from_str(text).expect("evtx renders JSON");
        let mut theirs = Vec::new();
        engine.match_event(
            &mut scratch,
            &WinRecord::new(&value),
            EventKind::Windows,
            &mut theirs,
        );
        assert_eq!(ours, theirs, "{} record {i}", file.display());
        for f in &ours {
            *counts.entry(f.rule.handle().to_string()).or_insert(0) += 1;
        }
    }
    counts
}

#[test]
fn unnamed_data_of_application_records_matches() {
    let sigma = vigil_testdata::corpus_or_skip!("sigma");
    let evtx = vigil_testdata::corpus_or_skip!("evtx");
    let built = support::load_rules(&sigma, &["rules/windows/builtin"]).build();
    assert!(built.errors.is_empty(), "{:?}", built.errors);
    let engine = built.engine;
    let mut missed = Vec::new();
    for (file, rule, want) in FIRE {
        let got = findings_of(&engine, &evtx.join(file));
        if got.get(*rule) != Some(want) {
            missed.push(format!(
                "{file}: rule {rule}: {:?}, want {want}",
                got.get(*rule)
            ));
        }
    }
    assert!(missed.is_empty(), "{missed:#?}");
    for (file, records) in LOCAL_FAILED_LOGONS {
        let path = evtx.join(file);
        assert_eq!(support::evtx_records(&path).len(), *records, "{file}");
        let got = findings_of(&engine, &path);
        assert_eq!(got.get(MSSQL_EXTERNAL), None, "{file}: {got:?}");
    }
}
