//! Checks on the source tree itself: every Rust module of the workspace opens with a `//!`
//! header saying what it owns (the style rule in ARCHITECTURE.md's spirit: a map you can trust),
//! and README's public list of event types names every type the engine emits.

use std::path::{Path, PathBuf};

/// Every `.rs` file under `dir`, build output aside.
fn rust_files(dir: &Path, found: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if path.is_dir() {
            if name != "target" && !name.starts_with('.') {
                rust_files(&path, found);
            }
        } else if name.ends_with(".rs") {
            found.push(path);
        }
    }
}

#[test]
fn every_module_opens_with_a_header_saying_what_it_owns() {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let mut files = Vec::new();
    for crate_dir in ["engine", "projector", "gateway", "proto"] {
        rust_files(&workspace.join(crate_dir), &mut files);
    }
    assert!(
        files.len() > 100,
        "the walk found the sources: {}",
        files.len()
    );
    let missing: Vec<String> = files
        .iter()
        .filter(|file| {
            let text = std::fs::read_to_string(file).unwrap();
            !text.trim_start().starts_with("//!")
        })
        .map(|file| file.strip_prefix(workspace).unwrap().display().to_string())
        .collect();
    assert!(
        missing.is_empty(),
        "modules without a `//!` header: {missing:?}"
    );
}

#[test]
fn readme_lists_every_event_type() {
    let readme = include_str!("../../../README.md");
    let start = readme
        .find("### Event subjects")
        .expect("README has its Event subjects section");
    let section = &readme[start..];
    let section = &section[..section[4..]
        .find("\n#")
        .map_or(section.len(), |end| end + 4)];
    let missing: Vec<&str> = roster_engine::domain::EventPayload::TYPES
        .iter()
        .copied()
        .filter(|name| !section.contains(&format!("`{name}`")))
        .collect();
    assert!(
        missing.is_empty(),
        "event types missing from README's Event subjects: {missing:?}"
    );
}
