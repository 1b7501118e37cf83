//! File extension → language name, shared by workers that report languages or pick source files.

/// Language for a file extension (lower-case, without the dot), `None` when not source code.
pub fn language_for_extension(ext: &str) -> Option<&'static str> {
    Some(match ext {
        "rs" => "Rust",
        "js" | "mjs" | "cjs" => "JavaScript",
        "jsx" => "JavaScript",
        "ts" | "mts" | "cts" => "TypeScript",
        "tsx" => "TypeScript",
        "py" | "pyi" => "Python",
        "go" => "Go",
        "java" => "Java",
        "kt" | "kts" => "Kotlin",
        "scala" => "Scala",
        "c" | "h" => "C",
        "cc" | "cpp" | "cxx" | "hpp" | "hh" | "hxx" => "C++",
        "cs" => "C#",
        "rb" => "Ruby",
        "php" => "PHP",
        "swift" => "Swift",
        "m" | "mm" => "Objective-C",
        "sh" | "bash" | "zsh" => "Shell",
        "ps1" => "PowerShell",
        "lua" => "Lua",
        "pl" | "pm" => "Perl",
        "r" => "R",
        "dart" => "Dart",
        "ex" | "exs" => "Elixir",
        "erl" | "hrl" => "Erlang",
        "hs" => "Haskell",
        "clj" | "cljs" => "Clojure",
        "vue" => "Vue",
        "svelte" => "Svelte",
        "sql" => "SQL",
        "html" | "htm" => "HTML",
        "css" | "scss" | "sass" | "less" => "CSS",
        "md" | "mdx" => "Markdown",
        "json" => "JSON",
        "yml" | "yaml" => "YAML",
        "toml" => "TOML",
        "xml" => "XML",
        "wit" => "WIT",
        _ => return None,
    })
}

/// Whether a language is programming code (not markup, data or config).
pub fn is_code(language: &str) -> bool {
    !matches!(language, "Markdown" | "JSON" | "YAML" | "TOML" | "XML" | "HTML" | "CSS")
}

/// The extension of a `/`-separated path, lower-cased (`""` when none).
pub fn extension(path: &str) -> String {
    let name = path.rsplit('/').next().unwrap_or(path);
    match name.rsplit_once('.') {
        Some((stem, ext)) if !stem.is_empty() => ext.to_ascii_lowercase(),
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_extensions() {
        assert_eq!(extension("src/a.TS"), "ts");
        assert_eq!(extension(".gitignore"), "");
        assert_eq!(language_for_extension(&extension("x/y.rs")), Some("Rust"));
        assert!(is_code("Rust") && !is_code("Markdown"));
    }
}
