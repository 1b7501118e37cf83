use super::*;

const RUST: &str = r##"//! Crate docs.
use std::collections::HashMap;
use std::io::{
    Read, Write,
};

/// A point.
#[derive(Debug)]
pub struct Point {
    pub x: i32,
    y: i32,
}

pub enum Shape { Circle, Square }

const LIMIT: usize = 10;

impl Point {
    /// Makes one.
    pub fn new(x: i32, y: i32) -> Self {
        let s = "{ not a brace";
        let c = '{';
        Point { x, y }
    }

    fn secret_body(&self) -> i32 {
        if self.x > 0 { self.x } else { BODY_ONLY }
    }
}

pub trait Area {
    fn area(&self) -> f64;
}

pub(crate) async fn fetch<'a>(
    url: &'a str,
    retries: u8,
) -> Result<String, Error> {
    let body = r#"}}}"#;
    todo!("INSIDE_BODY")
}

mod inner {
    pub fn helper() {}
}
"##;

#[test]
fn rust_keeps_imports_types_signatures_and_drops_bodies() {
    let out = compress("src/lib.rs", RUST).expect("rust is handled");
    for kept in [
        "//! Crate docs.",
        "use std::collections::HashMap;",
        "    Read, Write,",
        "/// A point.",
        "#[derive(Debug)]",
        "pub struct Point {",
        "    y: i32,",
        "pub enum Shape { Circle, Square }",
        "impl Point",
        "    /// Makes one.",
        "    pub fn new(x: i32, y: i32) -> Self",
        "    fn secret_body(&self) -> i32",
        "pub trait Area",
        "    fn area(&self) -> f64;",
        "pub(crate) async fn fetch<'a>(",
        "    retries: u8,",
        ") -> Result<String, Error>",
        "mod inner",
        "    pub fn helper()",
    ] {
        assert!(out.contains(kept), "missing {kept:?} in:\n{out}");
    }
    for dropped in ["not a brace", "BODY_ONLY", "INSIDE_BODY", "Point { x, y }", "}}}"] {
        assert!(!out.contains(dropped), "{dropped:?} leaked into:\n{out}");
    }
    assert!(out.contains(CHUNK_SEPARATOR), "non-adjacent chunks are separated:\n{out}");
    assert!(out.len() < RUST.len());
}

const TS: &str = r#"import { a, b } from "./x";
import type {
  C,
} from "./y";

/** Docs for greet. */
export function greet(name: string): string {
  const msg = `hello ${name} {`;
  return msg + "BODY_TS";
}

export interface Shape {
  kind: "circle" | "square";
  size?: number;
}

export type Id = string | number;

export const add = (a: number, b: number): number => {
  return a + b + BODY_ARROW;
};

export class Greeter extends Base implements Named {
  private count = 0;
  constructor(private readonly name: string) {
    super();
    INSIDE_CTOR();
  }
  async greet(times: number): Promise<void> {
    for (let i = 0; i < times; i++) { LOOP_BODY(); }
  }
}

enum Color { Red, Green }
"#;

#[test]
fn typescript_keeps_imports_types_and_signatures() {
    let out = compress("src/a.ts", TS).expect("ts is handled");
    for kept in [
        "import { a, b } from \"./x\";",
        "  C,",
        "/** Docs for greet. */",
        "export function greet(name: string): string",
        "export interface Shape {",
        "  size?: number;",
        "export type Id = string | number;",
        "export const add = (a: number, b: number): number",
        "export class Greeter extends Base implements Named",
        "  private count = 0;",
        "  constructor(private readonly name: string)",
        "  async greet(times: number): Promise<void>",
        "enum Color { Red, Green }",
    ] {
        assert!(out.contains(kept), "missing {kept:?} in:\n{out}");
    }
    for dropped in ["BODY_TS", "BODY_ARROW", "INSIDE_CTOR", "LOOP_BODY", "hello ${name}"] {
        assert!(!out.contains(dropped), "{dropped:?} leaked into:\n{out}");
    }
    // JavaScript goes through the same rules.
    let js = compress("a.mjs", "export function f(x) {\n  return SECRET_JS;\n}\n").expect("js");
    assert_eq!(js, "export function f(x)");
}

const PY: &str = r#"import os
from typing import (
    List,
    Optional,
)

# A constant.
LIMIT = 10

@dataclass
class Point:
    """A point."""
    x: int = 0

    def norm(self, other: "Point") -> float:
        """Distance.

        Longer text.
        """
        d = PY_BODY
        return d

async def fetch(url: str,
                retries: int = 3) -> str:
    text = """
def not_a_def():
"""
    return INSIDE_ASYNC
"#;

#[test]
fn python_keeps_imports_classes_signatures_and_docstrings() {
    let out = compress("pkg/mod.py", PY).expect("python is handled");
    for kept in [
        "import os",
        "    Optional,",
        "# A constant.",
        "LIMIT = 10",
        "@dataclass",
        "class Point:",
        "    \"\"\"A point.\"\"\"",
        "    x: int = 0",
        "    def norm(self, other: \"Point\") -> float:",
        "        Longer text.",
        "async def fetch(url: str,",
        "                retries: int = 3) -> str:",
    ] {
        assert!(out.contains(kept), "missing {kept:?} in:\n{out}");
    }
    for dropped in ["PY_BODY", "INSIDE_ASYNC", "not_a_def"] {
        assert!(!out.contains(dropped), "{dropped:?} leaked into:\n{out}");
    }
}

#[test]
fn other_languages_are_left_alone() {
    assert_eq!(compress("README.md", "# Title\n"), None);
    assert_eq!(compress("Makefile", "all:\n"), None);
}
