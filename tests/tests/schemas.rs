//! The schemas and the Rust model cannot drift: shipped data files parse
//! into the model, round-trip through Automerge, and the model's JSON
//! validates against `schemas/*.schema.json`.

use field_client::Store;
use sync_core::codes;
use sync_core::doc::checklist;

mod common;

#[test]
fn starter_checklists_round_trip_and_validate() {
    let lists = Store::checklists().unwrap();
    assert_eq!(lists.len(), 3);
    for list in lists {
        assert!(list.items.len() >= 15, "{} is too short", list.id);
        common::assert_valid("checklist", &serde_json::to_value(&list).unwrap());
        let doc = checklist::create(&list).unwrap();
        assert_eq!(checklist::read(&doc).unwrap(), list, "{} does not round-trip through Automerge", list.id);
        // Same content → same document on every device.
        assert_eq!(checklist::create(&list).unwrap().get_heads(), doc.get_heads());
        for (id, item) in &list.items {
            assert!(id.starts_with(&format!("{}/", list.id)), "{id}");
            assert!(item.accident_type.entry().is_some(), "{id}: unknown accident type");
        }
    }
}

#[test]
fn accident_table_and_criteria_are_complete() {
    let table = codes::gb6441_1986();
    let codes: Vec<&str> = table.iter().map(|e| e.code.as_str()).collect();
    let expected: Vec<String> = (1..=20).map(|n| format!("{n:02}")).collect();
    assert_eq!(codes, expected);
    assert_eq!(table[8].name, "高处坠落");
    for domain in ["construction", "coal_mine", "metal_nonmetal_mine"] {
        assert!(codes::criteria().iter().any(|c| c.domain == domain), "no criteria for {domain}");
    }
}

#[test]
fn the_knowledge_file_is_sourced_and_valid() {
    let text =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../schemas/work-injury-knowledge.json")).unwrap();
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    common::assert_valid("work-injury-knowledge", &json);
    let knowledge = sync_core::knowledge::Knowledge::bundled();
    let cited = knowledge
        .policy
        .iter()
        .map(|p| &p.source)
        .chain(knowledge.prevention.values().flat_map(|p| p.points.iter().map(|pt| &pt.source)))
        .chain(knowledge.quiz.iter().map(|q| &q.source));
    for source in cited {
        assert!(knowledge.sources.contains_key(source), "{source} is cited but not listed");
    }
    for (code, prevention) in &knowledge.prevention {
        let entry =
            codes::gb6441_1986().iter().find(|e| &e.code == code).unwrap_or_else(|| panic!("no accident type {code}"));
        assert_eq!(entry.name, prevention.name, "{code}");
    }
    for q in &knowledge.quiz {
        assert!(q.answer < q.choices.len(), "{}", q.id);
    }
}
