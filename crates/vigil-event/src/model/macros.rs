//! The two macros that declare OCSF objects and classes once, deriving serde and
//! by-name field access from the same declaration so the two can never disagree.

/// The JSON key of a declared field: its name, or the `as "..."` rename.
macro_rules! ocsf_key {
    ($field:ident) => {
        stringify!($field)
    };
    ($field:ident, $key:literal) => {
        $key
    };
}

/// Declares an OCSF object: a serde struct whose absent attributes are left out of the
/// JSON, plus its [`Fields`](crate::access::Fields) implementation and its stored
/// [`Shape`](crate::model::Shape).
macro_rules! ocsf_object {
    (
        $(#[$m:meta])*
        pub struct $name:ident {
            $(
                $(#[$fm:meta])*
                $field:ident $(as $key:literal)? : $ty:ty
            ),* $(,)?
        }
    ) => {
        $(#[$m])*
        #[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
        pub struct $name {
            $(
                $(#[$fm])*
                $(#[serde(rename = $key)])?
                #[serde(default, skip_serializing_if = "crate::model::Omit::omit")]
                pub $field: $ty,
            )*
        }

        impl crate::model::Omit for $name {
            fn omit(&self) -> bool {
                false
            }
        }

        impl crate::model::Shaped for $name {
            fn shape_in(outer: &mut Vec<&'static str>) -> crate::model::Shape {
                crate::model::shape::object_shape(stringify!($name), outer, |outer| {
                    vec![$(
                        crate::model::shape::Field {
                            name: ocsf_key!($field $(, $key)?),
                            shape: <$ty as crate::model::Shaped>::shape_in(outer),
                        },
                    )*]
                })
            }
        }

        impl crate::access::Fields for $name {
            fn field_at<'a>(
                &'a self,
                path: &crate::value::FieldPath,
                i: usize,
            ) -> Option<crate::value::Value<'a>> {
                if i == path.len() {
                    return Some(crate::value::Value::Object);
                }
                match path.part(i)? {
                    $( ocsf_key!($field $(, $key)?) =>
                        crate::access::Fields::field_at(&self.$field, path, i + 1), )*
                    _ => None,
                }
            }

            fn visit_strs<'a>(&'a self, f: &mut dyn FnMut(&'a str)) {
                $(
                    if !crate::access::is_lineage(ocsf_key!($field $(, $key)?)) {
                        crate::access::Fields::visit_strs(&self.$field, f);
                    }
                )*
            }
        }
    };
}

/// Declares an OCSF event class: the base event's attributes followed by the class's
/// own, as an [`ocsf_object!`], plus its [`Event`](crate::access::Event) implementation
/// and its identity ([`OcsfClass`](crate::model::OcsfClass)).
/// The caption function of a class's `status_id`: the base event's [`status`] enum
/// unless the class names its own (Incident Finding's workflow states).
///
/// [`status`]: crate::model::status
macro_rules! status_enum {
    () => {
        crate::model::status::name
    };
    ($status:ident) => {
        crate::model::$status::name
    };
}

macro_rules! ocsf_class {
    (
        $(#[$m:meta])*
        pub struct $name:ident (
            $class_uid:expr, $category_uid:expr, $class_name:literal,
            host_profile = [$($hp:ident),*],
            activities = { $($act_id:literal => $act_name:literal),* $(,)? }
            $(, status = $status:ident)?
        ) {
            $(
                $(#[$fm:meta])*
                $field:ident $(as $key:literal)? : $ty:ty
            ),* $(,)?
        }
    ) => {
        ocsf_object! {
            $(#[$m])*
            pub struct $name {
                /// The normalized activity id (the class's `activity_id` enum).
                activity_id: i32,
                /// The activity's caption.
                activity_name: Option<crate::model::Text>,
                /// The OCSF category (`class_uid / 1000`).
                category_uid: i32,
                /// The category's caption.
                category_name: Option<crate::model::Text>,
                /// The OCSF class id.
                class_uid: i32,
                /// The class's caption.
                class_name: Option<crate::model::Text>,
                /// `class_uid * 100 + activity_id`.
                type_uid: i64,
                /// `"<class name>: <activity name>"`.
                type_name: Option<crate::model::Text>,
                /// The normalized severity ([`severity`](crate::model::severity)).
                severity_id: i32,
                /// The severity's caption.
                severity: Option<crate::model::Text>,
                /// When the event happened, in milliseconds since the Unix epoch.
                time: i64,
                /// Minutes east of UTC of the event's source, when known.
                timezone_offset: Option<i32>,
                /// Start of the period an aggregate event covers (ms since the epoch).
                start_time: Option<i64>,
                /// End of the period an aggregate event covers (ms since the epoch).
                end_time: Option<i64>,
                /// How many times the event was seen, for aggregate events.
                count: Option<i32>,
                /// A human-readable description of the event.
                message: Option<String>,
                /// The outcome ([`status`](crate::model::status)).
                status_id: Option<i32>,
                /// The outcome's caption.
                status: Option<crate::model::Text>,
                /// The source's own status code (errno, exit status, ...).
                status_code: Option<String>,
                /// The source's explanation of the status.
                status_detail: Option<String>,
                /// Where the event comes from and how it was made.
                metadata: crate::model::Metadata,
                /// The host the event happened on.
                device: Option<crate::model::Shared<crate::model::Device>>,
                /// Who performed the activity.
                actor: Option<crate::model::Actor>,
                /// Observables for indexing and pivoting.
                observables: Vec<crate::model::Observable>,
                /// The source record, verbatim, when kept.
                raw_data: Option<String>,
                /// Source attributes with no place in the schema.
                unmapped: Option<serde_json::Map<String, serde_json::Value>>,
                $(
                    $(#[$fm])*
                    $field $(as $key)? : $ty,
                )*
            }
        }

        impl crate::model::OcsfClass for $name {
            const CLASS_UID: i32 = $class_uid;
            const CATEGORY_UID: i32 = $category_uid;
            const CLASS_NAME: &'static str = $class_name;

            fn activity_name(activity_id: i32) -> &'static str {
                match activity_id {
                    $( $act_id => $act_name, )*
                    0 => "Unknown",
                    _ => "Other",
                }
            }

            fn activity_id(&self) -> i32 {
                self.activity_id
            }
            fn custom_activity_name(&self) -> Option<crate::model::Text> {
                self.activity_name.clone()
            }
            fn metadata_mut(&mut self) -> &mut crate::model::Metadata {
                &mut self.metadata
            }
            fn set_identity(&mut self, activity_name: crate::model::Text, type_uid: i64) {
                use std::borrow::Cow;
                self.class_uid = Self::CLASS_UID;
                self.class_name = Some(Cow::Borrowed(Self::CLASS_NAME));
                self.category_uid = Self::CATEGORY_UID;
                self.category_name =
                    Some(Cow::Borrowed(crate::model::category_name(Self::CATEGORY_UID)));
                // The usual names are constants, joined at compile time.
                self.type_name = Some(match self.activity_id {
                    $( $act_id if activity_name == $act_name =>
                        Cow::Borrowed(concat!($class_name, ": ", $act_name)), )*
                    _ => Cow::Owned(format!("{}: {}", Self::CLASS_NAME, activity_name)),
                });
                self.activity_name = Some(activity_name);
                self.type_uid = type_uid;
                self.severity = Some(Cow::Borrowed(crate::model::severity::name(self.severity_id)));
                if let Some(s) = self.status_id {
                    self.status = Some(Cow::Borrowed(status_enum!($($status)?)(s)));
                }
            }
            fn uses_host_profile(&self) -> bool {
                false $( || self.$hp.is_some() )*
            }
        }

        impl crate::access::Event for $name {
            fn field(&self, path: &crate::value::FieldPath) -> Option<crate::value::Value<'_>> {
                crate::access::Fields::field_at(self, path, 0)
            }
            fn for_each_str<'a>(&'a self, f: &mut dyn FnMut(&'a str)) {
                crate::access::Fields::visit_strs(self, f)
            }
        }
    };
}
