//! `mcpgate demo-server`: a small MCP server over stdio (newline-delimited JSON, legacy
//! protocol) used by the quickstart and the tests. Notes are kept in memory and are also
//! resources (`note:///NAME`); one prompt (`summarize`). With a page size, lists are
//! paginated (the cursor is the index of the next item).
//!
//! Bottom layer: a standalone server; uses only `jsonrpc`.

use crate::jsonrpc::{self, Kind};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::io::{BufRead, Write};

const VERSIONS: [&str; 4] = ["2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25"];
const LATEST: &str = "2025-06-18";

/// Serves MCP on stdin/stdout until stdin closes.
///
/// # Errors
/// When stdout cannot be written.
pub fn run(page_size: Option<usize>) -> std::io::Result<()> {
    let stdin = std::io::stdin();
    let mut stdout = std::io::stdout().lock();
    let mut demo = Demo {
        page_size: page_size.filter(|n| *n > 0),
        ..Demo::default()
    };
    for line in stdin.lock().lines() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        for reply in demo.handle_line_all(&line) {
            let mut text = serde_json::to_string(&reply).unwrap_or_default();
            text.push('\n');
            stdout.write_all(text.as_bytes())?;
        }
        stdout.flush()?;
    }
    Ok(())
}

/// The demo server's state.
#[derive(Debug, Default)]
pub struct Demo {
    notes: BTreeMap<String, String>,
    /// Items per list page; `None`: everything in one page.
    pub page_size: Option<usize>,
}

impl Demo {
    /// Handles one line; returns every message to send: a progress notification first when
    /// a `tools/call` asks for progress (`_meta.progressToken`), then the reply.
    pub fn handle_line_all(&mut self, line: &str) -> Vec<Value> {
        let mut out = Vec::new();
        if let Ok(message) = serde_json::from_str::<Value>(line)
            && jsonrpc::method(&message) == Some("tools/call")
            && let Some(token) = message.pointer("/params/_meta/progressToken")
        {
            out.push(jsonrpc::notification(
                "notifications/progress",
                json!({"progressToken": token, "progress": 1, "total": 1, "message": "working"}),
            ));
        }
        out.extend(self.handle_line(line));
        out
    }

    /// Handles one line; returns the reply, if the message needs one.
    pub fn handle_line(&mut self, line: &str) -> Option<Value> {
        let message: Value = match serde_json::from_str(line) {
            Ok(v) => v,
            Err(e) => {
                return Some(jsonrpc::error(
                    Value::Null,
                    jsonrpc::PARSE_ERROR,
                    &format!("parse error: {e}"),
                ));
            }
        };
        match jsonrpc::classify(&message) {
            Err(e) => Some(e),
            Ok(Kind::Notification { .. } | Kind::Response { .. }) => None,
            Ok(Kind::Request { id, method }) => {
                let params = jsonrpc::params(&message);
                Some(match self.request(&method, params) {
                    Ok(result) => jsonrpc::result(id, result),
                    Err((code, msg)) => jsonrpc::error(id, code, &msg),
                })
            }
        }
    }

    fn request(
        &mut self,
        method: &str,
        params: &serde_json::Map<String, Value>,
    ) -> Result<Value, (i64, String)> {
        match method {
            "initialize" => {
                let asked = params
                    .get("protocolVersion")
                    .and_then(Value::as_str)
                    .unwrap_or(LATEST);
                let version = if VERSIONS.contains(&asked) {
                    asked
                } else {
                    LATEST
                };
                Ok(json!({
                    "protocolVersion": version,
                    "capabilities": {
                        "tools": {"listChanged": false},
                        "prompts": {"listChanged": false},
                        "resources": {"listChanged": false, "subscribe": false}
                    },
                    "serverInfo": {"name": "mcpgate-demo", "version": env!("CARGO_PKG_VERSION")},
                    "instructions": "A demo server: echo, arithmetic, notes and a pretend payment."
                }))
            }
            "ping" => Ok(json!({})),
            "tools/list" => self.page("tools", tools(), params),
            "prompts/list" => self.page("prompts", vec![summarize_prompt()], params),
            "prompts/get" => match params.get("name").and_then(Value::as_str) {
                Some("summarize") => {
                    let style = params
                        .get("arguments")
                        .and_then(|a| a.get("style"))
                        .and_then(Value::as_str)
                        .unwrap_or("short");
                    let names: Vec<&str> = self.notes.keys().map(String::as_str).collect();
                    Ok(json!({
                        "description": "Summarize the notes",
                        "messages": [{"role": "user", "content": {"type": "text",
                            "text": format!("Write a {style} summary of the notes: {}", names.join(", "))}}]
                    }))
                }
                Some(other) => Err((jsonrpc::INVALID_PARAMS, format!("Unknown prompt: {other}"))),
                None => Err((jsonrpc::INVALID_PARAMS, "missing prompt name".into())),
            },
            "resources/list" => {
                let items = self
                    .notes
                    .keys()
                    .map(|n| json!({"uri": format!("note:///{n}"), "name": n, "mimeType": "text/plain"}))
                    .collect();
                self.page("resources", items, params)
            }
            "resources/templates/list" => Ok(json!({"resourceTemplates": [
                {"uriTemplate": "note:///{name}", "name": "note", "mimeType": "text/plain"}
            ]})),
            "resources/read" => {
                let uri = params.get("uri").and_then(Value::as_str).unwrap_or("");
                match uri.strip_prefix("note:///").and_then(|n| self.notes.get(n)) {
                    Some(text) => Ok(
                        json!({"contents": [{"uri": uri, "mimeType": "text/plain", "text": text}]}),
                    ),
                    None => Err((jsonrpc::RESOURCE_NOT_FOUND, "Resource not found".into())),
                }
            }
            "tools/call" => {
                let name = params.get("name").and_then(Value::as_str).unwrap_or("");
                let empty = json!({});
                let args = params.get("arguments").unwrap_or(&empty);
                self.call(name, args)
            }
            _ => Err((
                jsonrpc::METHOD_NOT_FOUND,
                format!("Method not found: {method}"),
            )),
        }
    }

    /// One page of a list, under `key`.
    fn page(
        &self,
        key: &str,
        items: Vec<Value>,
        params: &serde_json::Map<String, Value>,
    ) -> Result<Value, (i64, String)> {
        let start = match params.get("cursor") {
            None | Some(Value::Null) => 0,
            Some(c) => c
                .as_str()
                .and_then(|c| c.parse::<usize>().ok())
                .filter(|i| *i <= items.len())
                .ok_or((jsonrpc::INVALID_PARAMS, "invalid cursor".to_owned()))?,
        };
        let size = self.page_size.unwrap_or(usize::MAX);
        let end = start.saturating_add(size).min(items.len());
        let page: Vec<Value> = items.get(start..end).unwrap_or_default().to_vec();
        let mut out = json!({ key: page });
        if end < items.len() {
            out["nextCursor"] = Value::String(end.to_string());
        }
        Ok(out)
    }

    fn call(&mut self, name: &str, args: &Value) -> Result<Value, (i64, String)> {
        let text = |k: &str| args.get(k).and_then(Value::as_str);
        let missing = |k: &str| Ok(tool_error(&format!("missing string argument `{k}`")));
        match name {
            "echo" => match text("text") {
                Some(t) => Ok(tool_text(t)),
                None => missing("text"),
            },
            "add" => match (
                args.get("a").and_then(Value::as_f64),
                args.get("b").and_then(Value::as_f64),
            ) {
                (Some(a), Some(b)) => {
                    let sum = a + b;
                    let text = if sum.fract() == 0.0 && sum.abs() < 9e15 {
                        format!("{}", sum as i64)
                    } else {
                        format!("{sum}")
                    };
                    Ok(tool_text(&text))
                }
                _ => Ok(tool_error("`a` and `b` must be numbers")),
            },
            "list_notes" => {
                let names: Vec<&str> = self.notes.keys().map(String::as_str).collect();
                Ok(tool_text(&names.join("\n")))
            }
            "read_note" => match text("name") {
                Some(n) => match self.notes.get(n) {
                    Some(t) => Ok(tool_text(t)),
                    None => Ok(tool_error(&format!("no note named `{n}`"))),
                },
                None => missing("name"),
            },
            "write_note" => match (text("name"), text("text")) {
                (Some(n), Some(t)) => {
                    self.notes.insert(n.to_owned(), t.to_owned());
                    Ok(tool_text(&format!("wrote `{n}`")))
                }
                _ => Ok(tool_error("`name` and `text` must be strings")),
            },
            "delete_note" => match text("name") {
                Some(n) => match self.notes.remove(n) {
                    Some(_) => Ok(tool_text(&format!("deleted `{n}`"))),
                    None => Ok(tool_error(&format!("no note named `{n}`"))),
                },
                None => missing("name"),
            },
            "send_payment" => match (text("to"), args.get("amount").and_then(Value::as_f64)) {
                (Some(to), Some(amount)) if amount > 0.0 => {
                    Ok(tool_text(&format!("pretended to send {amount} to {to}")))
                }
                _ => Ok(tool_error(
                    "`to` must be a string and `amount` a positive number",
                )),
            },
            _ => Err((jsonrpc::INVALID_PARAMS, format!("Unknown tool: {name}"))),
        }
    }
}

fn tool_text(text: &str) -> Value {
    json!({"content": [{"type": "text", "text": text}], "isError": false})
}

fn tool_error(text: &str) -> Value {
    json!({"content": [{"type": "text", "text": text}], "isError": true})
}

fn summarize_prompt() -> Value {
    json!({"name": "summarize", "description": "Summarize the notes.",
        "arguments": [{"name": "style", "description": "short or long", "required": false}]})
}

fn tool(name: &str, description: &str, schema: Value, annotations: Value) -> Value {
    json!({"name": name, "description": description, "inputSchema": schema, "annotations": annotations})
}

/// The demo tools with their schemas and annotations.
pub fn tools() -> Vec<Value> {
    let read_only = json!({"readOnlyHint": true, "destructiveHint": false, "idempotentHint": true, "openWorldHint": false});
    let string = json!({"type": "string"});
    vec![
        tool(
            "echo",
            "Returns the text it is given.",
            json!({"type": "object", "properties": {"text": string}, "required": ["text"]}),
            read_only.clone(),
        ),
        tool(
            "add",
            "Adds two numbers.",
            json!({"type": "object", "properties": {"a": {"type": "number"}, "b": {"type": "number"}}, "required": ["a", "b"]}),
            read_only.clone(),
        ),
        tool(
            "list_notes",
            "Lists the names of the notes.",
            json!({"type": "object", "properties": {}}),
            read_only.clone(),
        ),
        tool(
            "read_note",
            "Reads one note.",
            json!({"type": "object", "properties": {"name": string}, "required": ["name"]}),
            read_only,
        ),
        tool(
            "write_note",
            "Creates or replaces a note.",
            json!({"type": "object", "properties": {"name": string, "text": string}, "required": ["name", "text"]}),
            json!({"readOnlyHint": false, "destructiveHint": true, "idempotentHint": true, "openWorldHint": false}),
        ),
        tool(
            "delete_note",
            "Deletes a note.",
            json!({"type": "object", "properties": {"name": string}, "required": ["name"]}),
            json!({"readOnlyHint": false, "destructiveHint": true, "idempotentHint": true, "openWorldHint": false}),
        ),
        tool(
            "send_payment",
            "Pretends to send a payment (nothing leaves the machine).",
            json!({"type": "object", "properties": {"to": string, "amount": {"type": "number", "exclusiveMinimum": 0}}, "required": ["to", "amount"]}),
            json!({"readOnlyHint": false, "destructiveHint": true, "idempotentHint": false, "openWorldHint": true}),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(d: &mut Demo, name: &str, args: Value) -> Value {
        let line = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": name, "arguments": args}});
        d.handle_line(&line.to_string()).unwrap()
    }

    #[test]
    fn initialize_negotiates_a_known_version() {
        let mut d = Demo::default();
        let r = d
            .handle_line(r#"{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2099-01-01"}}"#)
            .unwrap();
        assert_eq!(r["result"]["protocolVersion"], LATEST);
        assert!(
            d.handle_line(r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#)
                .is_none()
        );
    }

    #[test]
    fn progress_comes_before_the_result() {
        let mut d = Demo::default();
        let out = d.handle_line_all(r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"text":"x"},"_meta":{"progressToken":"p"}}}"#);
        assert_eq!(out.len(), 2);
        assert_eq!(out[0]["params"]["progressToken"], "p");
        assert_eq!(out[1]["id"], 1);
    }

    #[test]
    fn lists_paginate() {
        let mut d = Demo {
            page_size: Some(3),
            ..Demo::default()
        };
        let list = |d: &mut Demo, cursor: Option<&str>| {
            let line = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {"cursor": cursor}});
            d.handle_line(&line.to_string()).unwrap()
        };
        let first = list(&mut d, None);
        assert_eq!(first["result"]["tools"].as_array().unwrap().len(), 3);
        assert_eq!(first["result"]["nextCursor"], "3");
        let last = list(&mut d, Some("6"));
        assert_eq!(last["result"]["tools"].as_array().unwrap().len(), 1);
        assert!(last["result"].get("nextCursor").is_none());
        assert_eq!(
            list(&mut d, Some("x"))["error"]["code"],
            jsonrpc::INVALID_PARAMS
        );
    }

    #[test]
    fn notes_are_resources() {
        let mut d = Demo::default();
        call(&mut d, "write_note", json!({"name": "a", "text": "alpha"}));
        let r = d
            .handle_line(r#"{"jsonrpc":"2.0","id":1,"method":"resources/list"}"#)
            .unwrap();
        assert_eq!(r["result"]["resources"][0]["uri"], "note:///a");
        let r = d
            .handle_line(r#"{"jsonrpc":"2.0","id":2,"method":"resources/read","params":{"uri":"note:///a"}}"#)
            .unwrap();
        assert_eq!(r["result"]["contents"][0]["text"], "alpha");
        let r = d
            .handle_line(
                r#"{"jsonrpc":"2.0","id":3,"method":"prompts/get","params":{"name":"summarize"}}"#,
            )
            .unwrap();
        assert!(
            r["result"]["messages"][0]["content"]["text"]
                .as_str()
                .unwrap()
                .contains('a')
        );
    }

    #[test]
    fn tools_work() {
        let mut d = Demo::default();
        assert_eq!(
            call(&mut d, "add", json!({"a": 2, "b": 3}))["result"]["content"][0]["text"],
            "5"
        );
        assert_eq!(
            call(&mut d, "echo", json!({"text": "hi"}))["result"]["content"][0]["text"],
            "hi"
        );
        call(&mut d, "write_note", json!({"name": "n", "text": "body"}));
        assert_eq!(
            call(&mut d, "read_note", json!({"name": "n"}))["result"]["content"][0]["text"],
            "body"
        );
        assert_eq!(
            call(&mut d, "list_notes", json!({}))["result"]["content"][0]["text"],
            "n"
        );
        call(&mut d, "delete_note", json!({"name": "n"}));
        assert_eq!(
            call(&mut d, "read_note", json!({"name": "n"}))["result"]["isError"],
            true
        );
        assert_eq!(
            call(&mut d, "nope", json!({}))["error"]["code"],
            jsonrpc::INVALID_PARAMS
        );
        assert_eq!(
            d.handle_line("{").unwrap()["error"]["code"],
            jsonrpc::PARSE_ERROR
        );
    }
}
