//! Every manifest in `tests/invalid/` is rejected by the real API server at
//! `kubectl apply` time, with a message naming the field.
//!
//! Each file starts with `# expect: <text>` lines that must all appear in
//! kubectl's error. In a file of several documents, all but the last are
//! setup that must apply; the last must be rejected (transition rules).

use crate::support::{self, assert_success, stderr};

#[tokio::test]
async fn invalid_manifests_are_rejected_with_a_message_naming_the_field() {
    let cluster = support::cluster();
    let client = cluster.client().await;
    let ns = support::namespace(&client, "invalid").await;

    let dir = support::repo_root().join("tests/invalid");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("tests/invalid exists")
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.extension().is_some_and(|ext| ext == "yaml"))
        .collect();
    files.sort();
    assert!(
        files.len() >= 12,
        "expected at least 12 invalid manifests, found {}",
        files.len()
    );

    let mut failures = Vec::new();
    for path in &files {
        let name = path
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        let text = std::fs::read_to_string(path).expect("read manifest");
        let expected: Vec<&str> = text
            .lines()
            .filter_map(|line| line.strip_prefix("# expect: "))
            .collect();
        assert!(!expected.is_empty(), "{name} has no `# expect:` line");
        let documents: Vec<&str> = text.split("\n---\n").collect();
        let (rejected, setup) = documents.split_last().expect("at least one document");
        for document in setup {
            let out = cluster.kubectl_with_stdin(&["apply", "-n", &ns, "-f", "-"], Some(document));
            assert_success(&out, &format!("setup document of {name}"));
        }
        let out = cluster.kubectl_with_stdin(&["apply", "-n", &ns, "-f", "-"], Some(rejected));
        let message = stderr(&out);
        if out.status.success() {
            failures.push(format!("{name}: was accepted"));
        } else if let Some(missing) = expected.iter().find(|e| !message.contains(*e)) {
            failures.push(format!("{name}: error lacks {missing:?}: {message}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
