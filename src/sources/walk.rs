//! The files a source reads under a path it is given: the file itself, or a folder's files with
//! the source's extensions, at any depth, sorted by path so every run reads in the same order.
//!
//! walkdir follows symbolic links (an export folder is often a link) and recognises a link that
//! leads back to a folder it came through, which a hand-written walk would follow forever. Hidden
//! entries (a name starting with a dot: editor backups, `.DS_Store`, a cache) are not read. What
//! cannot be listed is returned with the reason, for the source to report as a skip: nothing in a
//! folder is passed over without a word.

use std::path::{Path, PathBuf};

#[derive(Debug, Default)]
pub struct Found {
    pub files: Vec<PathBuf>,
    /// Entries that could not be listed or followed, each with what went wrong.
    pub unreadable: Vec<(PathBuf, String)>,
}

/// Err only when `path` itself cannot be read.
pub fn files(path: &Path, exts: &[&str]) -> std::io::Result<Found> {
    let meta = std::fs::metadata(path)?;
    if !meta.is_dir() {
        return Ok(Found {
            files: vec![path.to_path_buf()],
            unreadable: vec![],
        });
    }
    let mut found = Found::default();
    let walker = walkdir::WalkDir::new(path)
        .follow_links(true)
        .sort_by_file_name()
        .into_iter()
        .filter_entry(|e| e.depth() == 0 || !e.file_name().to_string_lossy().starts_with('.'));
    for entry in walker {
        match entry {
            Ok(e) if e.file_type().is_dir() => {}
            Ok(e) => {
                let wanted = e
                    .path()
                    .extension()
                    .and_then(|x| x.to_str())
                    .is_some_and(|x| exts.iter().any(|w| x.eq_ignore_ascii_case(w)));
                if wanted {
                    found.files.push(e.into_path());
                }
            }
            Err(e) => {
                let at = e.path().unwrap_or(path).to_path_buf();
                let why = match e.loop_ancestor() {
                    Some(a) => format!(
                        "a link that leads back to {}, a folder it is inside; not followed",
                        a.display()
                    ),
                    None => format!("cannot be listed: {e}"),
                };
                found.unreadable.push((at, why));
            }
        }
    }
    found.files.sort();
    Ok(found)
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    #[test]
    fn a_link_back_to_a_parent_is_reported_not_followed_forever() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("a/b")).unwrap();
        std::fs::write(root.join("a/b/one.csv"), "x").unwrap();
        std::fs::write(root.join("a/two.CSV"), "x").unwrap();
        std::fs::write(root.join("a/.hidden.csv"), "x").unwrap();
        std::fs::write(root.join("a/notes.txt"), "x").unwrap();
        std::os::unix::fs::symlink(root.join("a"), root.join("a/b/loop")).unwrap();
        std::os::unix::fs::symlink(root.join("a/two.CSV"), root.join("linked.csv")).unwrap();
        let found = files(root, &["csv"]).unwrap();
        let names: Vec<String> = found
            .files
            .iter()
            .map(|p| p.strip_prefix(root).unwrap().display().to_string())
            .collect();
        assert_eq!(names, vec!["a/b/one.csv", "a/two.CSV", "linked.csv"]);
        assert_eq!(found.unreadable.len(), 1, "{:?}", found.unreadable);
        assert!(
            found.unreadable[0].1.contains("leads back"),
            "{:?}",
            found.unreadable
        );
    }
}
