//! Logsource routing: which rule buckets an event meets, and through which field mapping
//! (its *variant*) they read it. Windows records are routed by channel, EventID and
//! provider through the Windows mapping, Vigil's OCSF events by `class_uid` and
//! `activity_id` through the Linux taxonomy, other events by the logsource their caller
//! declares. The routing tables are built with the engine ([`RouteBuilder`]) and read for
//! every event ([`Routes::route`]).

use crate::fields::{SlotTable, Variant};
use crate::fxhash::FxMap;
use crate::mapping::{RecordKeys, WinSource, WindowsMap};
use crate::model::LogSource;
use vigil_event::taxonomy::Taxonomy;
use vigil_event::{Event, FieldPath, Value};

/// Which kind of event is being matched, which decides the logsource routing and field
/// mapping.
#[derive(Debug, Clone, Copy)]
pub enum EventKind<'a> {
    /// A Windows event record, nested (`evtx` JSON) or flat: routed by channel, provider
    /// and EventID through the Windows mapping.
    Windows,
    /// One of Vigil's OCSF events (or its JSON): routed by `class_uid`/`activity_id`
    /// through the Linux taxonomy.
    Ocsf,
    /// Any JSON whose logsource the user declared (see
    /// [`Engine::declare`](crate::Engine::declare)); fields are read under their Sigma
    /// names.
    Declared(&'a Declared),
}

/// The routes of a user-declared logsource, computed once by
/// [`Engine::declare`](crate::Engine::declare).
#[derive(Debug, Clone)]
pub struct Declared {
    pub(crate) routes: Vec<Route>,
    pub(crate) logsource: LogSource,
}

impl Declared {
    /// The declared logsource.
    pub fn logsource(&self) -> &LogSource {
        &self.logsource
    }

    /// How many rule groups the declared logsource reaches.
    pub fn len(&self) -> usize {
        self.routes.len()
    }

    /// Whether no rule applies to the declared logsource.
    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }
}

/// A route: the rules of `bucket` read through `variant`'s field mapping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Route {
    pub bucket: u32,
    pub variant: u32,
}

/// A bucket's route for the Windows records of one source.
#[derive(Debug, Clone)]
struct WinRoute {
    /// Variant for nested records; flat records use `variant + 1`.
    route: Route,
    provider: Option<String>,
    /// The source's place in its logsource's list: of the sources a record fits, the
    /// first decides how the rules read it.
    order: u32,
}

/// The Windows routes of one channel: for every EventID, and by EventID.
#[derive(Debug, Default)]
struct ChannelRoutes {
    any: Vec<WinRoute>,
    by_eid: FxMap<i64, Vec<WinRoute>>,
}

/// The routing tables of an engine.
pub(crate) struct Routes {
    /// Windows routes by lowercased channel.
    win_channels: FxMap<String, ChannelRoutes>,
    /// Buckets of `product: windows` alone: every Windows record, or (split by EventID)
    /// those of one EventID.
    win_all: Vec<Route>,
    win_all_eid: FxMap<i64, Vec<Route>>,
    /// Where Windows records keep their channel, EventID and provider.
    win_keys: RecordKeys,
    /// OCSF routes by (class_uid, activity_id), each with the index of its category's
    /// `unless` conditions in `ocsf_unless`.
    ocsf: FxMap<(i64, i64), Vec<(Route, usize)>>,
    /// The taxonomy categories' `unless` conditions (empty for most).
    ocsf_unless: Vec<Vec<(FieldPath, i64)>>,
    /// Buckets of `product: linux` alone: every OCSF event.
    ocsf_all: Vec<Route>,
    class_uid: FieldPath,
    activity_id: FieldPath,
    /// Buckets without a logsource: every event.
    all_events: Vec<Route>,
}

/// The Windows routes of the last record whose routing read no provider, and what they
/// were found from: a record with the same shape, EventID and channel has the same.
#[derive(Debug, Default)]
pub(crate) struct WinCache {
    /// 0 for nested records, 1 for flat ones.
    shape: u32,
    event_id: Option<i64>,
    /// The channel as written.
    channel: String,
    routes: Vec<Route>,
}

/// A record's EventID as rules compare it: a whole number, or a string holding one.
fn event_id(v: &Value<'_>) -> Option<i64> {
    match v {
        Value::Int(i) => Some(*i),
        other => other
            .as_f64()
            .filter(|f| f.fract() == 0.0 && f.abs() < 9.0e15)
            .map(|f| f as i64),
    }
}

impl Routes {
    /// Appends the routes of `event` to `routes`. `cache` keeps the last Windows record's
    /// routes, `lower` is a buffer.
    #[inline(always)]
    pub(crate) fn route(
        &self,
        cache: &mut Option<WinCache>,
        lower: &mut String,
        event: &dyn Event,
        kind: EventKind<'_>,
        routes: &mut Vec<Route>,
    ) {
        routes.extend_from_slice(&self.all_events);
        match kind {
            EventKind::Declared(d) => routes.extend_from_slice(&d.routes),
            EventKind::Ocsf => {
                routes.extend_from_slice(&self.ocsf_all);
                let class = event.field(&self.class_uid).and_then(|v| v.as_i64());
                let act = event.field(&self.activity_id).and_then(|v| v.as_i64());
                if let (Some(c), Some(a)) = (class, act) {
                    if let Some(r) = self.ocsf.get(&(c, a)) {
                        for (route, ci) in r {
                            let excluded = self.ocsf_unless[*ci].iter().any(|(path, value)| {
                                event.field(path).and_then(|v| v.as_i64()) == Some(*value)
                            });
                            if !excluded {
                                routes.push(*route);
                            }
                        }
                    }
                }
            }
            EventKind::Windows => self.route_windows(cache, lower, event, routes),
        }
    }

    fn route_windows(
        &self,
        cache: &mut Option<WinCache>,
        lower: &mut String,
        event: &dyn Event,
        routes: &mut Vec<Route>,
    ) {
        let k = &self.win_keys;
        let nested = event.field(&k.system).is_some();
        let shape = u32::from(!nested);
        let i = shape as usize;
        let (ch, eid, prov) = (&k.channel[i], &k.event_id[i], &k.provider[i]);
        let eid = eid
            .iter()
            .find_map(|p| event.field(p).as_ref().and_then(event_id));
        let channel = event.field(ch);
        let channel = channel.as_ref().and_then(|c| c.as_str());
        // A record routed as the last one: its routes again.
        if let (Some(c), Some(last)) = (channel, &*cache) {
            if last.shape == shape && last.event_id == eid && last.channel == c {
                routes.extend_from_slice(&last.routes);
                return;
            }
        }
        let start = routes.len();
        let all_eid = eid.and_then(|e| self.win_all_eid.get(&e));
        for r in self.win_all.iter().chain(all_eid.into_iter().flatten()) {
            routes.push(Route {
                bucket: r.bucket,
                variant: r.variant + shape,
            });
        }
        let Some(channel) = channel else {
            return;
        };
        lower.clear();
        if channel.is_ascii() {
            lower.push_str(channel);
            lower.make_ascii_lowercase();
        } else {
            lower.extend(channel.chars().flat_map(char::to_lowercase));
        }
        let Some(cr) = self.win_channels.get(lower.as_str()) else {
            return;
        };
        // The provider, read (once) only if a route of this record names one.
        let mut provider: Option<Option<String>> = None;
        let by_eid = eid.and_then(|e| cr.by_eid.get(&e));
        // Both lists run by (bucket, source order): merged, the first source a record
        // fits comes first for each bucket.
        let (mut any, mut eids) = (
            cr.any.iter().peekable(),
            by_eid.map_or(&[][..], Vec::as_slice).iter().peekable(),
        );
        let key = |w: &WinRoute| (w.route.bucket, w.order);
        while let Some(wr) = match (any.peek(), eids.peek()) {
            (Some(a), Some(e)) if key(e) < key(a) => eids.next(),
            (Some(_), _) => any.next(),
            (None, _) => eids.next(),
        } {
            if let Some(p) = &wr.provider {
                let have = provider.get_or_insert_with(|| {
                    event
                        .field(prov)
                        .and_then(|v| v.as_str().map(str::to_lowercase))
                });
                if have.as_deref() != Some(p.as_str()) {
                    continue;
                }
            }
            let r = Route {
                bucket: wr.route.bucket,
                variant: wr.route.variant + shape,
            };
            if !routes.iter().any(|x| x.bucket == r.bucket) {
                routes.push(r);
            }
        }
        if provider.is_none() {
            let last = cache.get_or_insert_with(Default::default);
            (last.shape, last.event_id) = (shape, eid);
            last.channel.clear();
            last.channel.push_str(channel);
            last.routes.clear();
            last.routes.extend_from_slice(&routes[start..]);
        }
    }
}

/// Variant keys, for building each bucket's field mapping once per source.
#[derive(Debug, Clone, PartialEq)]
enum VariantKey {
    Win(Option<WinSource>, bool),
    Ocsf(Option<String>),
    Generic,
}

/// The variants of one bucket being built: its field mapping per kind of event.
pub(crate) struct BucketVariants<'a> {
    fields: &'a [String],
    keys: Vec<VariantKey>,
    pub variants: Vec<Variant>,
}

impl<'a> BucketVariants<'a> {
    pub(crate) fn new(fields: &'a [String]) -> Self {
        BucketVariants {
            fields,
            keys: Vec::new(),
            variants: Vec::new(),
        }
    }

    /// The index of the variant for `key`, made (its fields' slots) if new.
    fn variant(
        &mut self,
        key: VariantKey,
        slots: &mut SlotTable,
        win: &WindowsMap,
        linux: &Taxonomy,
    ) -> u32 {
        if let Some(i) = self.keys.iter().position(|k| *k == key) {
            return i as u32;
        }
        let mut s = Vec::with_capacity(self.fields.len());
        for f in self.fields {
            let paths = match &key {
                VariantKey::Win(src, nested) => win.paths(f, src.as_ref(), *nested),
                VariantKey::Ocsf(cat) => match cat
                    .as_deref()
                    .and_then(|c| linux.category(c))
                    .and_then(|c| c.field(f))
                {
                    Some(p) => vec![p.as_str().to_string()],
                    None => vec![f.clone()],
                },
                VariantKey::Generic => vec![f.clone()],
            };
            s.push(slots.slot(paths));
        }
        let time = match &key {
            VariantKey::Win(_, nested) => slots.slot(win.time_paths(*nested)),
            VariantKey::Ocsf(_) => slots.slot(vec!["time".into()]),
            VariantKey::Generic => slots.slot(
                vigil_event::time::DEFAULT_TIME_FIELDS
                    .iter()
                    .map(|s| s.to_string())
                    .collect(),
            ),
        };
        self.variants.push(Variant {
            slots: s.into_boxed_slice(),
            time: Some(time),
        });
        self.keys.push(key);
        (self.variants.len() - 1) as u32
    }

    /// The variant that reads fields under their Sigma names (declared events).
    pub(crate) fn generic(
        &mut self,
        slots: &mut SlotTable,
        win: &WindowsMap,
        linux: &Taxonomy,
    ) -> u32 {
        self.variant(VariantKey::Generic, slots, win, linux)
    }
}

/// The routing tables, filled bucket by bucket as the engine is built.
pub(crate) struct RouteBuilder<'m> {
    win: &'m WindowsMap,
    linux: &'m Taxonomy,
    win_channels: FxMap<String, ChannelRoutes>,
    win_all: Vec<Route>,
    win_all_eid: FxMap<i64, Vec<Route>>,
    ocsf: FxMap<(i64, i64), Vec<(Route, usize)>>,
    ocsf_all: Vec<Route>,
    all_events: Vec<Route>,
}

impl<'m> RouteBuilder<'m> {
    pub(crate) fn new(win: &'m WindowsMap, linux: &'m Taxonomy) -> Self {
        RouteBuilder {
            win,
            linux,
            win_channels: FxMap::default(),
            win_all: Vec::new(),
            win_all_eid: FxMap::default(),
            ocsf: FxMap::default(),
            ocsf_all: Vec::new(),
            all_events: Vec::new(),
        }
    }

    /// Routes bucket `bucket` (logsource `ls`; `split_eid` when its rules all require
    /// that EventID) to the events it applies to, making the variants they read it
    /// through. Whether any built-in kind of event reaches it.
    pub(crate) fn add(
        &mut self,
        bucket: u32,
        ls: &LogSource,
        split_eid: Option<i64>,
        variants: &mut BucketVariants<'_>,
        slots: &mut SlotTable,
    ) -> bool {
        let (win, linux) = (self.win, self.linux);
        let mut variant =
            |key: VariantKey, slots: &mut SlotTable| variants.variant(key, slots, win, linux);
        let route = |variant: u32| Route { bucket, variant };
        if *ls == LogSource::default() {
            let v = variant(VariantKey::Generic, slots);
            self.all_events.push(route(v));
            return true;
        }
        let product = ls.product.as_deref();
        let mut routed = false;
        // Windows.
        if matches!(product, None | Some("windows")) {
            let cat_sources = ls.category.as_ref().map(|c| win.categories.get(c));
            let svc_sources = ls.service.as_ref().map(|s| win.services.get(s));
            let sources: Option<Vec<WinSource>> = match (cat_sources, svc_sources) {
                (None, None) => None,
                (Some(Some(c)), None) => Some(c.clone()),
                (None, Some(Some(s))) => Some(s.clone()),
                (Some(Some(c)), Some(Some(s))) => Some(
                    c.iter()
                        .filter(|src| {
                            src.channels
                                .iter()
                                .any(|ch| s.iter().any(|ss| ss.channels.contains(ch)))
                        })
                        .cloned()
                        .collect(),
                ),
                _ => Some(Vec::new()),
            };
            match sources {
                None => {
                    // product: windows only: every Windows record.
                    let v = variant(VariantKey::Win(None, true), slots);
                    let v2 = variant(VariantKey::Win(None, false), slots);
                    debug_assert_eq!(v + 1, v2);
                    match split_eid {
                        Some(e) => self.win_all_eid.entry(e).or_default().push(route(v)),
                        None => self.win_all.push(route(v)),
                    }
                    routed = true;
                }
                Some(list) => {
                    for (order, src) in list.into_iter().enumerate() {
                        let v = variant(VariantKey::Win(Some(src.clone()), true), slots);
                        let v2 = variant(VariantKey::Win(Some(src.clone()), false), slots);
                        debug_assert_eq!(v + 1, v2);
                        let wr = WinRoute {
                            route: route(v),
                            provider: src.provider.clone(),
                            order: order as u32,
                        };
                        for ch in &src.channels {
                            let cr = self.win_channels.entry(ch.clone()).or_default();
                            if let Some(e) = split_eid {
                                if src.event_ids.is_empty() || src.event_ids.contains(&e) {
                                    cr.by_eid.entry(e).or_default().push(wr.clone());
                                }
                            } else if src.event_ids.is_empty() {
                                cr.any.push(wr.clone());
                            } else {
                                for e in &src.event_ids {
                                    cr.by_eid.entry(*e).or_default().push(wr.clone());
                                }
                            }
                        }
                        routed = true;
                    }
                }
            }
        }
        // Linux (Vigil's OCSF events).
        if matches!(product, None | Some("linux")) {
            match (&ls.category, &ls.service) {
                (Some(c), None) => {
                    if let Some(ci) = linux.categories.iter().position(|k| &k.name == c) {
                        let cat = &linux.categories[ci];
                        let v = variant(VariantKey::Ocsf(Some(c.clone())), slots);
                        for a in &cat.activity_ids {
                            self.ocsf
                                .entry((i64::from(cat.class_uid), i64::from(*a)))
                                .or_default()
                                .push((route(v), ci));
                        }
                        routed = true;
                    }
                }
                (None, None) if product == Some("linux") => {
                    let v = variant(VariantKey::Ocsf(None), slots);
                    self.ocsf_all.push(route(v));
                    routed = true;
                }
                _ => {}
            }
        }
        routed
    }

    /// The routing tables.
    pub(crate) fn finish(self) -> Routes {
        Routes {
            win_channels: self.win_channels,
            win_all: self.win_all,
            win_all_eid: self.win_all_eid,
            win_keys: self.win.record_keys(),
            ocsf: self.ocsf,
            ocsf_unless: self
                .linux
                .categories
                .iter()
                .map(|c| c.unless.clone())
                .collect(),
            ocsf_all: self.ocsf_all,
            class_uid: FieldPath::new("class_uid"),
            activity_id: FieldPath::new("activity_id"),
            all_events: self.all_events,
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::{EventKind, Loader};

    /// Records routed as the one before reuse its routes: the findings of every record
    /// of a stream (channels, EventIDs and shapes alternating and repeating) are those
    /// of the record matched alone with a fresh scratch.
    #[test]
    fn repeated_routes_match_as_fresh_ones() {
        let mut loader = Loader::new();
        let rules = [
            "logsource: {product: windows, service: security}\ndetection:\n  s:\n    TargetUserName: admin\n  condition: s",
            "logsource: {product: windows, category: process_creation}\ndetection:\n  s:\n    Image|endswith: '\\cmd.exe'\n  condition: s",
            "logsource: {product: windows}\ndetection:\n  s:\n    EventID: 4625\n  condition: s",
            "logsource: {product: windows, service: sysmon}\ndetection:\n  s:\n    EventID: 3\n  condition: s",
        ];
        for (i, r) in rules.iter().enumerate() {
            loader.add(&format!("r{i}.yml"), &format!("title: R{i}\n{r}\n"));
        }
        let built = loader.build();
        assert!(built.errors.is_empty(), "{:?}", built.errors);
        let engine = built.engine;
        let flat = |ch: &str, eid: i64| {
            serde_json::json!({"Channel": ch, "EventID": eid, "TargetUserName": "admin",
                "Image": "C:\\Windows\\cmd.exe"})
        };
        let nested = |ch: &str, eid: i64| {
            serde_json::json!({"Event": {"System": {"Channel": ch, "EventID": eid},
                "EventData": {"TargetUserName": "admin", "Image": "C:\\Windows\\cmd.exe"}}})
        };
        let mut stream = Vec::new();
        for (ch, eid) in [
            ("Security", 4688),
            ("Security", 4688),
            ("Security", 4625),
            ("security", 4625),
            ("Microsoft-Windows-Sysmon/Operational", 1),
            ("Microsoft-Windows-Sysmon/Operational", 1),
            ("Microsoft-Windows-Sysmon/Operational", 3),
            ("Security", 4688),
            ("Other", 4625),
            ("Other", 4625),
            ("Security", 4688),
        ] {
            stream.push(flat(ch, eid));
            stream.push(nested(ch, eid));
            stream.push(nested(ch, eid));
            stream.push(flat(ch, eid));
        }
        stream.push(serde_json::json!({"EventID": 4625}));
        stream.push(serde_json::json!({"EventID": 4625}));
        let titles = |out: &[crate::Finding<'_>]| -> Vec<String> {
            out.iter().map(|f| f.rule.title.clone()).collect()
        };
        let mut scratch = engine.scratch();
        let mut matched = 0;
        for ev in &stream {
            let mut out = Vec::new();
            engine.match_event(&mut scratch, ev, EventKind::Windows, &mut out);
            let mut alone = Vec::new();
            engine.match_event(&mut engine.scratch(), ev, EventKind::Windows, &mut alone);
            assert_eq!(titles(&out), titles(&alone), "{ev}");
            matched += out.len();
        }
        assert!(matched > stream.len());
    }
}
