//! The seed documents' example manifests: the valid ones apply; the invalid ones are rejected by the
//! apiserver with the message their `# expect-error:` line names.

use std::path::PathBuf;

use test_kit::{Env, repo_root};

fn files(dir: PathBuf) -> Vec<PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    v.sort();
    v
}

#[tokio::test]
async fn valid_seed_examples_apply() {
    let env = Env::get().await;
    let ns = env.namespace("seeds-valid").await;
    let valid = files(repo_root().join("examples/seeds"));
    assert!(!valid.is_empty());
    for f in valid {
        let out = env
            .kubectl
            .run(&["apply", "-n", &ns.name, "-f", f.to_str().unwrap()], None)
            .await;
        assert!(out.success, "{} was rejected:\n{}", f.display(), out.stderr);
    }
}

#[tokio::test]
async fn invalid_seed_examples_are_rejected_with_a_precise_message() {
    let env = Env::get().await;
    let ns = env.namespace("seeds-invalid").await;
    let invalid = files(repo_root().join("examples/seeds/invalid"));
    assert!(
        invalid.len() >= 4,
        "expected the seed documents' known mistakes under examples/seeds/invalid"
    );
    for f in invalid {
        let text = std::fs::read_to_string(&f).unwrap();
        let expected = text
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("# expect-error:"))
            .map(str::trim);
        let expected = expected
            .unwrap_or_else(|| panic!("{}: first line must be `# expect-error: ...`", f.display()));
        let out = env
            .kubectl
            .run(&["apply", "-n", &ns.name, "-f", f.to_str().unwrap()], None)
            .await;
        assert!(
            !out.success,
            "{} was accepted but must be rejected ({expected})",
            f.display()
        );
        assert!(
            out.stderr.contains(expected),
            "{}: expected {expected:?} in:\n{}",
            f.display(),
            out.stderr
        );
    }
}
