//! `docker run --env-file` files.

/// Reads a `docker run --env-file` style file: `NAME=value` lines, `#` comments and blank lines
/// ignored, no quote processing (as Docker does). Returns the pairs in file order.
pub fn read_env_file(path: &std::path::Path) -> std::io::Result<Vec<(String, String)>> {
    let text = std::fs::read_to_string(path)?;
    let mut pairs = Vec::new();
    for line in text.lines() {
        let line = line.trim_start();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        match line.split_once('=') {
            Some((k, v)) => pairs.push((k.trim().to_string(), v.to_string())),
            // `NAME` alone takes the value from the caller's environment, as Docker does.
            None => {
                if let Ok(v) = std::env::var(line.trim()) {
                    pairs.push((line.trim().to_string(), v));
                }
            }
        }
    }
    Ok(pairs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_file_is_read_like_docker() {
        let dir = std::env::temp_dir().join(format!("peo-envfile-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("x.env");
        std::fs::write(&path, "# comment\n\nA=1\nB = two=2\nC=\"q\"\n").unwrap();
        let pairs = read_env_file(&path).unwrap();
        assert_eq!(
            pairs,
            vec![
                ("A".to_string(), "1".to_string()),
                ("B".to_string(), " two=2".to_string()),
                ("C".to_string(), "\"q\"".to_string())
            ]
        );
        std::fs::remove_dir_all(dir).unwrap();
    }
}
