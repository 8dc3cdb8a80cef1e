//! Object and field metadata: the one description of the org's schema that both the REST API
//! (validation, `describe`) and Change Data Capture (change-event Avro schemas, field bitmaps)
//! are built from, so the two can never disagree about which fields exist or in what order.
//!
//! Field order matters: a change event's Avro schema lists `ChangeEventHeader` first and then
//! the object's fields in this order, and the `changedFields` bitmaps count positions in it.

/// A Salesforce field type, as `describe` reports it (`type`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FieldType {
    Id,
    String,
    TextArea,
    Picklist,
    MultiPicklist,
    Boolean,
    Currency,
    Double,
    Percent,
    Int,
    Date,
    DateTime,
    Email,
    Phone,
    Url,
    /// A lookup; `to` names the objects it may point at.
    Reference {
        to: Vec<String>,
    },
    /// A compound field (e.g. `BillingAddress`); its parts are [`FieldMeta::components`].
    Address,
}

impl FieldType {
    /// The `type` string of `describe`.
    pub fn describe_name(&self) -> &'static str {
        match self {
            FieldType::Id => "id",
            FieldType::String => "string",
            FieldType::TextArea => "textarea",
            FieldType::Picklist => "picklist",
            FieldType::MultiPicklist => "multipicklist",
            FieldType::Boolean => "boolean",
            FieldType::Currency => "currency",
            FieldType::Double => "double",
            FieldType::Percent => "percent",
            FieldType::Int => "int",
            FieldType::Date => "date",
            FieldType::DateTime => "datetime",
            FieldType::Email => "email",
            FieldType::Phone => "phone",
            FieldType::Url => "url",
            FieldType::Reference { .. } => "reference",
            FieldType::Address => "address",
        }
    }
}

/// One part of a compound field: its name inside the compound (as in the change event's nested
/// record, e.g. `City`) and the REST field that holds it (e.g. `BillingCity`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompoundComponent {
    pub name: String,
    pub field: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldMeta {
    /// API name (`Amount`, `Jira_Key__c`).
    pub name: String,
    pub label: String,
    pub ty: FieldType,
    /// Maximum length for text types.
    pub length: Option<u32>,
    /// Allowed values for picklists, in order.
    pub picklist_values: Vec<String>,
    /// A restricted picklist refuses values outside `picklist_values`.
    pub restricted_picklist: bool,
    /// Must have a value on create (`nillable: false` and no default).
    pub required: bool,
    /// Usable for upsert by external id.
    pub external_id: bool,
    pub unique: bool,
    pub createable: bool,
    pub updateable: bool,
    /// For compound fields: their parts, in the nested record's order.
    pub components: Vec<CompoundComponent>,
    /// For a REST field that is part of a compound (e.g. `BillingCity`): the compound's name.
    /// Such fields are not top-level fields of the change event; they live in the compound.
    pub compound_parent: Option<String>,
}

impl FieldMeta {
    /// A plain field of type `ty`, createable and updateable, optional.
    pub fn new(name: &str, ty: FieldType) -> Self {
        FieldMeta {
            name: name.to_string(),
            label: name.trim_end_matches("__c").replace('_', " "),
            ty,
            length: None,
            picklist_values: Vec::new(),
            restricted_picklist: false,
            required: false,
            external_id: false,
            unique: false,
            createable: true,
            updateable: true,
            components: Vec::new(),
            compound_parent: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectMeta {
    /// API name (`Opportunity`, `Escalation__c`).
    pub name: String,
    pub label: String,
    /// The 3-character Id prefix (`001` Account, `003` Contact, `006` Opportunity, `500` Case,
    /// `00T` Task; custom objects `a0…`).
    pub key_prefix: String,
    pub custom: bool,
    /// Every field, in schema order (see the module comment).
    pub fields: Vec<FieldMeta>,
}

impl ObjectMeta {
    pub fn field(&self, name: &str) -> Option<&FieldMeta> {
        self.fields
            .iter()
            .find(|f| f.name.eq_ignore_ascii_case(name))
    }

    /// The fields that are top-level fields of the change event, in order (compound parts are
    /// not: they are nested in their compound).
    pub fn change_event_fields(&self) -> impl Iterator<Item = &FieldMeta> {
        self.fields.iter().filter(|f| f.compound_parent.is_none())
    }

    /// `/data/<Object>ChangeEvent`, or `/data/<Name>__ChangeEvent` for custom objects.
    pub fn change_event_channel(&self) -> String {
        format!("/data/{}", self.change_event_name())
    }

    /// `AccountChangeEvent`, `Escalation__ChangeEvent`.
    pub fn change_event_name(&self) -> String {
        match self.name.strip_suffix("__c") {
            Some(base) => format!("{base}__ChangeEvent"),
            None => format!("{}ChangeEvent", self.name),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channels_follow_the_naming_rules() {
        let std = ObjectMeta {
            name: "Account".into(),
            label: "Account".into(),
            key_prefix: "001".into(),
            custom: false,
            fields: vec![],
        };
        assert_eq!(std.change_event_channel(), "/data/AccountChangeEvent");
        let custom = ObjectMeta {
            name: "Escalation__c".into(),
            custom: true,
            key_prefix: "a01".into(),
            ..std
        };
        assert_eq!(
            custom.change_event_channel(),
            "/data/Escalation__ChangeEvent"
        );
    }
}
