//! The org's schema: the objects sfjira syncs, described once as [`ObjectMeta`] so that REST
//! validation, `describe`, SOQL and Change Data Capture all agree on field names, types and
//! order. Key prefixes are the real ones (`001` Account, `003` Contact, `006` Opportunity,
//! `500` Case, `00T` Task); the custom object gets `a0X`, as custom objects get `a0…` prefixes.
//!
//! Field order is the schema order the change events use: `Id`, then the object's own fields,
//! then the audit fields, as in real change-event schemas.

use super::meta::{CompoundComponent, FieldMeta, FieldType, ObjectMeta};

/// Every object of the org, in a fixed order.
pub fn objects() -> Vec<ObjectMeta> {
    vec![
        account(),
        contact(),
        opportunity(),
        case(),
        task(),
        escalation(),
    ]
}

/// The key prefix of `User` Ids (not a synced object, but Ids of users are real Ids).
pub const USER_PREFIX: &str = "005";
/// The key prefix of the organization Id.
pub const ORG_PREFIX: &str = "00D";

fn text(name: &str, len: u32) -> FieldMeta {
    FieldMeta {
        length: Some(len),
        ..FieldMeta::new(name, FieldType::String)
    }
}

fn required(mut f: FieldMeta) -> FieldMeta {
    f.required = true;
    f
}

fn read_only(mut f: FieldMeta) -> FieldMeta {
    f.createable = false;
    f.updateable = false;
    f
}

fn labelled(mut f: FieldMeta, label: &str) -> FieldMeta {
    f.label = label.to_string();
    f
}

fn reference(name: &str, to: &[&str]) -> FieldMeta {
    FieldMeta::new(
        name,
        FieldType::Reference {
            to: to.iter().map(|s| s.to_string()).collect(),
        },
    )
}

fn picklist(name: &str, values: &[&str], restricted: bool) -> FieldMeta {
    FieldMeta {
        picklist_values: values.iter().map(|s| s.to_string()).collect(),
        restricted_picklist: restricted,
        length: Some(255),
        ..FieldMeta::new(name, FieldType::Picklist)
    }
}

/// `Jira_Key__c`: the connector's idempotency key (external id, unique, text(255)).
fn jira_key() -> FieldMeta {
    FieldMeta {
        external_id: true,
        unique: true,
        ..labelled(text("Jira_Key__c", 255), "Jira Key")
    }
}

/// A compound address (`BillingAddress`) followed by its parts (`BillingStreet` …).
fn address(prefix: &str) -> Vec<FieldMeta> {
    let parts: [(&str, FieldType, u32); 7] = [
        ("Street", FieldType::TextArea, 255),
        ("City", FieldType::String, 40),
        ("State", FieldType::String, 80),
        ("PostalCode", FieldType::String, 20),
        ("Country", FieldType::String, 80),
        ("Latitude", FieldType::Double, 0),
        ("Longitude", FieldType::Double, 0),
    ];
    let compound_name = format!("{prefix}Address");
    let mut compound = read_only(FieldMeta::new(&compound_name, FieldType::Address));
    compound.label = format!("{prefix} Address");
    compound.components = parts
        .iter()
        .map(|(p, _, _)| CompoundComponent {
            name: p.to_string(),
            field: format!("{prefix}{p}"),
        })
        .collect();
    let mut out = vec![compound];
    for (p, ty, len) in parts {
        let mut f = FieldMeta::new(&format!("{prefix}{p}"), ty);
        f.label = format!("{prefix} {p}");
        f.length = (len > 0).then_some(len);
        f.compound_parent = Some(compound_name.clone());
        out.push(f);
    }
    out
}

/// The fields every object ends with.
fn audit_fields() -> Vec<FieldMeta> {
    let mut owner = reference("OwnerId", &["User"]);
    owner.label = "Owner ID".into();
    vec![
        owner,
        labelled(
            read_only(FieldMeta::new("CreatedDate", FieldType::DateTime)),
            "Created Date",
        ),
        labelled(
            read_only(reference("CreatedById", &["User"])),
            "Created By ID",
        ),
        labelled(
            read_only(FieldMeta::new("LastModifiedDate", FieldType::DateTime)),
            "Last Modified Date",
        ),
        labelled(
            read_only(reference("LastModifiedById", &["User"])),
            "Last Modified By ID",
        ),
        labelled(
            read_only(FieldMeta::new("SystemModstamp", FieldType::DateTime)),
            "System Modstamp",
        ),
        labelled(
            read_only(FieldMeta::new("IsDeleted", FieldType::Boolean)),
            "Deleted",
        ),
    ]
}

fn id_field(label: &str) -> FieldMeta {
    labelled(read_only(FieldMeta::new("Id", FieldType::Id)), label)
}

fn object(name: &str, label: &str, prefix: &str, own: Vec<FieldMeta>) -> ObjectMeta {
    let mut fields = vec![id_field(&format!("{label} ID"))];
    fields.extend(own);
    fields.extend(audit_fields());
    ObjectMeta {
        name: name.into(),
        label: label.into(),
        key_prefix: prefix.into(),
        custom: name.ends_with("__c"),
        fields,
    }
}

fn account() -> ObjectMeta {
    let mut own = vec![
        labelled(required(text("Name", 255)), "Account Name"),
        picklist(
            "Type",
            &[
                "Prospect",
                "Customer - Direct",
                "Customer - Channel",
                "Partner",
                "Other",
            ],
            false,
        ),
        picklist(
            "Industry",
            &["Agriculture", "Banking", "Technology", "Retail", "Other"],
            false,
        ),
        text("Phone", 40),
        labelled(FieldMeta::new("Website", FieldType::Url), "Website"),
        labelled(
            FieldMeta {
                length: Some(32000),
                ..FieldMeta::new("Description", FieldType::TextArea)
            },
            "Account Description",
        ),
        labelled(
            FieldMeta::new("AnnualRevenue", FieldType::Currency),
            "Annual Revenue",
        ),
    ];
    own.extend(address("Billing"));
    own.push(jira_key());
    // An external id that is not unique, as real orgs allow: upserts on it can match several
    // records (300 Multiple Choices).
    own.push(FieldMeta {
        external_id: true,
        ..labelled(text("Legacy_Id__c", 80), "Legacy Id")
    });
    object("Account", "Account", "001", own)
}

fn contact() -> ObjectMeta {
    let mut name = read_only(text("Name", 121));
    name.label = "Full Name".into();
    let own = vec![
        labelled(text("FirstName", 40), "First Name"),
        labelled(required(text("LastName", 80)), "Last Name"),
        name,
        labelled(reference("AccountId", &["Account"]), "Account ID"),
        FieldMeta {
            length: Some(80),
            ..FieldMeta::new("Email", FieldType::Email)
        },
        text("Phone", 40),
        text("Title", 128),
        jira_key(),
    ];
    object("Contact", "Contact", "003", own)
}

fn opportunity() -> ObjectMeta {
    let own = vec![
        labelled(required(text("Name", 120)), "Name"),
        labelled(
            required(picklist(
                "StageName",
                &[
                    "Prospecting",
                    "Qualification",
                    "Needs Analysis",
                    "Value Proposition",
                    "Proposal/Price Quote",
                    "Negotiation/Review",
                    "Closed Won",
                    "Closed Lost",
                ],
                true,
            )),
            "Stage",
        ),
        labelled(FieldMeta::new("Amount", FieldType::Currency), "Amount"),
        labelled(
            required(FieldMeta::new("CloseDate", FieldType::Date)),
            "Close Date",
        ),
        labelled(reference("AccountId", &["Account"]), "Account ID"),
        labelled(
            FieldMeta::new("Probability", FieldType::Percent),
            "Probability (%)",
        ),
        labelled(
            FieldMeta {
                length: Some(32000),
                ..FieldMeta::new("Description", FieldType::TextArea)
            },
            "Description",
        ),
        jira_key(),
        // What the demo mapping writes back from Jira (config/mapping.yaml).
        labelled(
            picklist(
                "Delivery_Status__c",
                &["Not Started", "In Progress", "Delivered"],
                true,
            ),
            "Delivery Status",
        ),
        labelled(
            FieldMeta::new("Jira_Updated__c", FieldType::DateTime),
            "Jira Updated",
        ),
    ];
    object("Opportunity", "Opportunity", "006", own)
}

fn case() -> ObjectMeta {
    let mut number = read_only(text("CaseNumber", 30));
    number.label = "Case Number".into();
    let own = vec![
        number,
        text("Subject", 255),
        FieldMeta {
            length: Some(32000),
            ..FieldMeta::new("Description", FieldType::TextArea)
        },
        picklist("Status", &["New", "Working", "Escalated", "Closed"], false),
        picklist("Priority", &["High", "Medium", "Low"], false),
        picklist("Origin", &["Phone", "Email", "Web"], false),
        labelled(reference("AccountId", &["Account"]), "Account ID"),
        labelled(reference("ContactId", &["Contact"]), "Contact ID"),
        jira_key(),
    ];
    object("Case", "Case", "500", own)
}

fn task() -> ObjectMeta {
    let own = vec![
        text("Subject", 255),
        FieldMeta {
            length: Some(32000),
            ..FieldMeta::new("Description", FieldType::TextArea)
        },
        labelled(
            reference(
                "WhatId",
                &["Account", "Opportunity", "Case", "Escalation__c"],
            ),
            "Related To ID",
        ),
        labelled(reference("WhoId", &["Contact"]), "Name ID"),
        // Required with defaults in a real org; the sandbox has no defaults, so optional.
        picklist(
            "Status",
            &[
                "Not Started",
                "In Progress",
                "Completed",
                "Waiting on someone else",
                "Deferred",
            ],
            true,
        ),
        picklist("Priority", &["High", "Normal", "Low"], true),
        labelled(
            FieldMeta::new("ActivityDate", FieldType::Date),
            "Due Date Only",
        ),
        jira_key(),
        // The Jira comment a task came from (the demo mapping upserts comments through it).
        FieldMeta {
            external_id: true,
            unique: true,
            ..labelled(text("Jira_Comment_Id__c", 255), "Jira Comment Id")
        },
    ];
    object("Task", "Task", "00T", own)
}

fn escalation() -> ObjectMeta {
    let own = vec![
        labelled(required(text("Name", 80)), "Escalation Name"),
        labelled(
            required(picklist(
                "Severity__c",
                &["Sev1", "Sev2", "Sev3", "Sev4"],
                true,
            )),
            "Severity",
        ),
        labelled(reference("Opportunity__c", &["Opportunity"]), "Opportunity"),
        labelled(
            FieldMeta {
                length: Some(32768),
                ..FieldMeta::new("Details__c", FieldType::TextArea)
            },
            "Details",
        ),
        labelled(
            FieldMeta::new("Resolved__c", FieldType::Boolean),
            "Resolved",
        ),
        jira_key(),
    ];
    object("Escalation__c", "Escalation", "a0X", own)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn billing_address_parts_point_at_their_compound() {
        let acct = account();
        let city = acct.field("BillingCity").expect("BillingCity");
        assert_eq!(city.compound_parent.as_deref(), Some("BillingAddress"));
        let compound = acct.field("BillingAddress").expect("BillingAddress");
        assert_eq!(compound.components.len(), 7);
        assert!(acct.change_event_fields().all(|f| f.name != "BillingCity"));
    }

    #[test]
    fn every_object_has_the_system_fields_and_a_unique_prefix() {
        let objs = objects();
        let mut prefixes: Vec<_> = objs.iter().map(|o| o.key_prefix.clone()).collect();
        prefixes.dedup();
        assert_eq!(prefixes.len(), objs.len());
        for o in &objs {
            for f in [
                "Id",
                "OwnerId",
                "CreatedDate",
                "SystemModstamp",
                "IsDeleted",
            ] {
                assert!(o.field(f).is_some(), "{}.{f}", o.name);
            }
        }
    }
}
