//! SCIM filters (RFC 7644 §3.4.2.2): parsing, validation against a resource schema, and
//! evaluation over a resource's JSON.
//!
//! Precedence, loosest first: `or`, `and`, `not`, then grouping and attribute expressions.
//! Attribute names and operators are case-insensitive; a multi-valued attribute matches when any
//! of its values does. Leniencies real clients need: `not(` without a space, unquoted values
//! (`externalId eq jyoung`), and a value path followed by a sub-attribute comparison
//! (`emails[type eq "work"].value eq "x"`, as Entra sends), read as
//! `emails[type eq "work" and value eq "x"]`.

use std::cmp::Ordering;

use serde_json::Value;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::error::ScimError;
use crate::schema::{Attribute, Kind, ResourceSchema};

/// Longest filter accepted, in bytes.
pub const MAX_FILTER_LENGTH: usize = 16 * 1024;
/// Deepest nesting of parentheses, brackets and `not` accepted.
const MAX_DEPTH: usize = 32;

/// `[urn:]name[.sub]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AttrPath {
    pub urn: Option<String>,
    pub name: String,
    pub sub: Option<String>,
}

impl AttrPath {
    pub fn is(&self, name: &str) -> bool {
        self.name.eq_ignore_ascii_case(name)
    }

    pub fn is_sub(&self, name: &str, sub: &str) -> bool {
        self.is(name)
            && self
                .sub
                .as_deref()
                .is_some_and(|actual| actual.eq_ignore_ascii_case(sub))
    }
}

impl std::fmt::Display for AttrPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some(urn) = &self.urn {
            write!(f, "{urn}:")?;
        }
        f.write_str(&self.name)?;
        if let Some(sub) = &self.sub {
            write!(f, ".{sub}")?;
        }
        Ok(())
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CompareOp {
    Eq,
    Ne,
    Co,
    Sw,
    Ew,
    Gt,
    Ge,
    Lt,
    Le,
}

impl CompareOp {
    fn parse(word: &str) -> Option<Self> {
        Some(match word.to_ascii_lowercase().as_str() {
            "eq" => Self::Eq,
            "ne" => Self::Ne,
            "co" => Self::Co,
            "sw" => Self::Sw,
            "ew" => Self::Ew,
            "gt" => Self::Gt,
            "ge" => Self::Ge,
            "lt" => Self::Lt,
            "le" => Self::Le,
            _ => return None,
        })
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum Literal {
    Null,
    Bool(bool),
    Number(f64),
    String(String),
}

#[derive(Clone, Debug, PartialEq)]
pub enum Filter {
    Compare {
        path: AttrPath,
        op: CompareOp,
        value: Literal,
    },
    Present(AttrPath),
    And(Box<Filter>, Box<Filter>),
    Or(Box<Filter>, Box<Filter>),
    Not(Box<Filter>),
    /// `path[filter]`: some element of the multi-valued `path` matches `filter`, whose attribute
    /// paths are relative to the element.
    ValuePath {
        path: AttrPath,
        filter: Box<Filter>,
    },
}

// ---- tokens --------------------------------------------------------------------------------

#[derive(Clone, Debug, PartialEq)]
enum Token {
    Open,
    Close,
    OpenBracket,
    CloseBracket,
    Word(String),
    Quoted(String),
}

fn tokenize(input: &str) -> Result<Vec<Token>, ScimError> {
    let mut tokens = Vec::new();
    let mut chars = input.char_indices().peekable();
    while let Some(&(start, c)) = chars.peek() {
        match c {
            c if c.is_whitespace() => {
                chars.next();
            }
            '(' | ')' | '[' | ']' => {
                chars.next();
                tokens.push(match c {
                    '(' => Token::Open,
                    ')' => Token::Close,
                    '[' => Token::OpenBracket,
                    _ => Token::CloseBracket,
                });
            }
            '"' => {
                // A JSON string: find its end honouring escapes, then let serde_json decode it.
                chars.next();
                let mut end = None;
                let mut escaped = false;
                for (index, c) in chars.by_ref() {
                    if escaped {
                        escaped = false;
                    } else if c == '\\' {
                        escaped = true;
                    } else if c == '"' {
                        end = Some(index);
                        break;
                    }
                }
                let end =
                    end.ok_or_else(|| ScimError::invalid_filter("unterminated string in filter"))?;
                let text: String = serde_json::from_str(&input[start..=end])
                    .map_err(|_| ScimError::invalid_filter("invalid string literal in filter"))?;
                tokens.push(Token::Quoted(text));
            }
            _ => {
                let mut end = input.len();
                while let Some(&(index, c)) = chars.peek() {
                    if c.is_whitespace() || matches!(c, '(' | ')' | '[' | ']' | '"') {
                        end = index;
                        break;
                    }
                    chars.next();
                }
                tokens.push(Token::Word(input[start..end].to_owned()));
            }
        }
    }
    Ok(tokens)
}

// ---- parsing -------------------------------------------------------------------------------

/// Parses a filter expression.
pub fn parse(input: &str) -> Result<Filter, ScimError> {
    if input.len() > MAX_FILTER_LENGTH {
        return Err(ScimError::invalid_filter(format!(
            "filter is longer than {MAX_FILTER_LENGTH} bytes"
        )));
    }
    let tokens = tokenize(input)?;
    if tokens.is_empty() {
        return Err(ScimError::invalid_filter("filter is empty"));
    }
    let mut parser = Parser {
        tokens,
        position: 0,
        depth: 0,
    };
    let filter = parser.or()?;
    match parser.peek() {
        None => Ok(filter),
        Some(token) => Err(ScimError::invalid_filter(format!(
            "unexpected {} in filter",
            describe(token)
        ))),
    }
}

/// Parses an attribute path: `[urn:]name[.sub]`.
pub fn parse_attr_path(text: &str) -> Result<AttrPath, String> {
    let (urn, rest) = split_urn(text);
    let (name, sub) = match rest.split_once('.') {
        Some((name, sub)) => (name, Some(sub)),
        None => (rest, None),
    };
    if !is_attr_name(name) {
        return Err(format!("{text:?} is not a valid attribute path"));
    }
    if let Some(sub) = sub
        && !is_attr_name(sub)
    {
        return Err(format!("{text:?} is not a valid attribute path"));
    }
    Ok(AttrPath {
        urn: urn.map(str::to_owned),
        name: name.to_owned(),
        sub: sub.map(str::to_owned),
    })
}

/// Splits a schema URN prefix (`urn:…:User:`) from an attribute path.
pub fn split_urn(text: &str) -> (Option<&str>, &str) {
    // `get`, not slicing: the fourth byte may fall inside a multi-byte character (`a🂠`).
    let is_urn = text
        .get(..4)
        .is_some_and(|prefix| prefix.eq_ignore_ascii_case("urn:"));
    if text.len() > 4 && is_urn {
        // The attribute starts after the last ':' (attribute names contain none).
        match text.rfind(':') {
            Some(index) if index > 4 => (Some(&text[..index]), &text[index + 1..]),
            _ => (None, text),
        }
    } else {
        (None, text)
    }
}

fn is_attr_name(name: &str) -> bool {
    if name.eq_ignore_ascii_case("$ref") {
        return true;
    }
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

fn describe(token: &Token) -> String {
    match token {
        Token::Open => "'('".into(),
        Token::Close => "')'".into(),
        Token::OpenBracket => "'['".into(),
        Token::CloseBracket => "']'".into(),
        Token::Word(word) => format!("{word:?}"),
        Token::Quoted(text) => format!("string {text:?}"),
    }
}

struct Parser {
    tokens: Vec<Token>,
    position: usize,
    depth: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.position)
    }

    fn next(&mut self) -> Option<Token> {
        let token = self.tokens.get(self.position).cloned();
        self.position += 1;
        token
    }

    fn peek_keyword(&self, keyword: &str) -> bool {
        matches!(self.peek(), Some(Token::Word(word)) if word.eq_ignore_ascii_case(keyword))
    }

    fn expect(&mut self, expected: Token) -> Result<(), ScimError> {
        match self.next() {
            Some(token) if token == expected => Ok(()),
            Some(token) => Err(ScimError::invalid_filter(format!(
                "expected {} but found {}",
                describe(&expected),
                describe(&token)
            ))),
            None => Err(ScimError::invalid_filter(format!(
                "expected {} but the filter ended",
                describe(&expected)
            ))),
        }
    }

    fn nest(&mut self) -> Result<(), ScimError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(ScimError::invalid_filter("filter is nested too deeply"));
        }
        Ok(())
    }

    fn or(&mut self) -> Result<Filter, ScimError> {
        let mut left = self.and()?;
        while self.peek_keyword("or") {
            self.next();
            let right = self.and()?;
            left = Filter::Or(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Filter, ScimError> {
        let mut left = self.not()?;
        while self.peek_keyword("and") {
            self.next();
            let right = self.not()?;
            left = Filter::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn not(&mut self) -> Result<Filter, ScimError> {
        if self.peek_keyword("not") && self.tokens.get(self.position + 1) == Some(&Token::Open) {
            self.next();
            self.nest()?;
            self.expect(Token::Open)?;
            let inner = self.or()?;
            self.expect(Token::Close)?;
            self.depth -= 1;
            return Ok(Filter::Not(Box::new(inner)));
        }
        self.atom()
    }

    fn atom(&mut self) -> Result<Filter, ScimError> {
        match self.next() {
            Some(Token::Open) => {
                self.nest()?;
                let inner = self.or()?;
                self.expect(Token::Close)?;
                self.depth -= 1;
                Ok(inner)
            }
            Some(Token::Word(word)) => {
                let path = parse_attr_path(&word).map_err(ScimError::invalid_filter)?;
                if self.peek() == Some(&Token::OpenBracket) {
                    return self.value_path(path);
                }
                self.expression(path)
            }
            Some(token) => Err(ScimError::invalid_filter(format!(
                "expected an attribute but found {}",
                describe(&token)
            ))),
            None => Err(ScimError::invalid_filter(
                "filter ended where an attribute was expected",
            )),
        }
    }

    fn value_path(&mut self, path: AttrPath) -> Result<Filter, ScimError> {
        if path.sub.is_some() {
            return Err(ScimError::invalid_filter(format!(
                "a value filter applies to an attribute, not to {path}"
            )));
        }
        self.next();
        self.nest()?;
        let inner = self.or()?;
        self.expect(Token::CloseBracket)?;
        self.depth -= 1;
        // `emails[type eq "work"].value eq "x"`: a sub-attribute comparison after the brackets.
        if let Some(Token::Word(word)) = self.peek()
            && let Some(sub) = word.strip_prefix('.')
        {
            let sub = AttrPath {
                urn: None,
                name: sub.to_owned(),
                sub: None,
            };
            if !is_attr_name(&sub.name) {
                return Err(ScimError::invalid_filter(format!(
                    "{word:?} is not a valid sub-attribute"
                )));
            }
            self.next();
            let comparison = self.expression(sub)?;
            return Ok(Filter::ValuePath {
                path,
                filter: Box::new(Filter::And(Box::new(inner), Box::new(comparison))),
            });
        }
        Ok(Filter::ValuePath {
            path,
            filter: Box::new(inner),
        })
    }

    fn expression(&mut self, path: AttrPath) -> Result<Filter, ScimError> {
        let operator = match self.next() {
            Some(Token::Word(word)) => word,
            Some(token) => {
                return Err(ScimError::invalid_filter(format!(
                    "expected an operator after {path} but found {}",
                    describe(&token)
                )));
            }
            None => {
                return Err(ScimError::invalid_filter(format!(
                    "expected an operator after {path}"
                )));
            }
        };
        if operator.eq_ignore_ascii_case("pr") {
            return Ok(Filter::Present(path));
        }
        let op = CompareOp::parse(&operator)
            .ok_or_else(|| ScimError::invalid_filter(format!("unknown operator {operator:?}")))?;
        let value = match self.next() {
            Some(Token::Quoted(text)) => Literal::String(text),
            Some(Token::Word(word)) => literal(&word),
            Some(token) => {
                return Err(ScimError::invalid_filter(format!(
                    "expected a value after {operator} but found {}",
                    describe(&token)
                )));
            }
            None => {
                return Err(ScimError::invalid_filter(format!(
                    "expected a value after {operator}"
                )));
            }
        };
        Ok(Filter::Compare { path, op, value })
    }
}

fn literal(word: &str) -> Literal {
    match word.to_ascii_lowercase().as_str() {
        "true" => Literal::Bool(true),
        "false" => Literal::Bool(false),
        "null" => Literal::Null,
        _ => match word.parse::<f64>() {
            Ok(number) if number.is_finite() => Literal::Number(number),
            // Entra's documentation shows unquoted values; treat them as strings.
            _ => Literal::String(word.to_owned()),
        },
    }
}

// ---- validation ----------------------------------------------------------------------------

/// Checks that every attribute the filter names exists in `schema`.
pub fn validate(filter: &Filter, schema: &ResourceSchema) -> Result<(), ScimError> {
    validate_in(filter, schema, None)
}

fn validate_in(
    filter: &Filter,
    schema: &ResourceSchema,
    parent: Option<&'static Attribute>,
) -> Result<(), ScimError> {
    match filter {
        Filter::Compare { path, .. } | Filter::Present(path) => {
            resolve(path, schema, parent).map(|_| ())
        }
        Filter::And(left, right) | Filter::Or(left, right) => {
            validate_in(left, schema, parent)?;
            validate_in(right, schema, parent)
        }
        Filter::Not(inner) => validate_in(inner, schema, parent),
        Filter::ValuePath { path, filter } => {
            if parent.is_some() {
                return Err(ScimError::invalid_filter("value filters cannot be nested"));
            }
            let attribute = resolve(path, schema, None)?;
            if attribute.kind != Kind::Complex {
                return Err(ScimError::invalid_filter(format!(
                    "{path} is not a complex attribute and takes no value filter"
                )));
            }
            validate_in(filter, schema, Some(attribute))
        }
    }
}

/// The definition of the attribute `path` names (its sub-attribute when it has one).
pub fn resolve(
    path: &AttrPath,
    schema: &ResourceSchema,
    parent: Option<&'static Attribute>,
) -> Result<&'static Attribute, ScimError> {
    let unknown = || ScimError::invalid_filter(format!("unknown attribute {path}"));
    let attribute = match parent {
        Some(parent) => parent.sub(&path.name).ok_or_else(unknown)?,
        None => schema
            .attribute(path.urn.as_deref(), &path.name)
            .ok_or_else(unknown)?,
    };
    match &path.sub {
        Some(sub) => attribute.sub(sub).ok_or_else(unknown),
        None => Ok(attribute),
    }
}

// ---- evaluation ----------------------------------------------------------------------------

/// Whether `resource` (a SCIM JSON object) matches a validated filter.
pub fn matches(filter: &Filter, resource: &Value, schema: &ResourceSchema) -> bool {
    evaluate(filter, resource, schema, None)
}

/// Whether one element of a multi-valued attribute (`parent`) matches a value filter.
pub fn matches_element(
    filter: &Filter,
    element: &Value,
    schema: &ResourceSchema,
    parent: Option<&'static Attribute>,
) -> bool {
    evaluate(filter, element, schema, parent)
}

fn evaluate(
    filter: &Filter,
    context: &Value,
    schema: &ResourceSchema,
    parent: Option<&'static Attribute>,
) -> bool {
    match filter {
        Filter::And(left, right) => {
            evaluate(left, context, schema, parent) && evaluate(right, context, schema, parent)
        }
        Filter::Or(left, right) => {
            evaluate(left, context, schema, parent) || evaluate(right, context, schema, parent)
        }
        Filter::Not(inner) => !evaluate(inner, context, schema, parent),
        Filter::Present(path) => {
            let (values, _) = values_at(context, path, schema, parent);
            values.into_iter().any(is_present)
        }
        Filter::Compare { path, op, value } => {
            let (values, attribute) = values_at(context, path, schema, parent);
            match op {
                CompareOp::Ne => {
                    let equal = values
                        .iter()
                        .any(|candidate| compare(candidate, CompareOp::Eq, value, attribute));
                    // `ne null` on a missing attribute is false: absent equals null.
                    let absent_null = values.is_empty() && *value == Literal::Null;
                    !(equal || absent_null)
                }
                _ if *value == Literal::Null && values.is_empty() => *op == CompareOp::Eq,
                _ => values
                    .iter()
                    .any(|candidate| compare(candidate, *op, value, attribute)),
            }
        }
        Filter::ValuePath { path, filter } => {
            let attribute = resolve(path, schema, None).ok();
            let Some(container) = container(context, path.urn.as_deref(), schema) else {
                return false;
            };
            match get_ci(container, &path.name) {
                Some(Value::Array(elements)) => elements
                    .iter()
                    .any(|element| evaluate(filter, element, schema, attribute)),
                Some(element @ Value::Object(_)) => evaluate(filter, element, schema, attribute),
                _ => false,
            }
        }
    }
}

/// The object holding attributes of schema `urn` (an extension's own object, or the resource).
fn container<'a>(
    resource: &'a Value,
    urn: Option<&str>,
    schema: &ResourceSchema,
) -> Option<&'a Value> {
    match urn {
        Some(urn) if !schema.core.id.eq_ignore_ascii_case(urn) => get_ci(resource, urn),
        _ => Some(resource),
    }
}

/// Looks up a key case-insensitively (exact match first).
pub fn get_ci<'a>(value: &'a Value, key: &str) -> Option<&'a Value> {
    let object = value.as_object()?;
    object.get(key).or_else(|| {
        object
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(key))
            .map(|(_, value)| value)
    })
}

/// Every value `path` reaches in `context`, flattening multi-valued attributes, with the
/// definition of the leaf attribute.
fn values_at<'a>(
    context: &'a Value,
    path: &AttrPath,
    schema: &ResourceSchema,
    parent: Option<&'static Attribute>,
) -> (Vec<&'a Value>, Option<&'static Attribute>) {
    let attribute = match parent {
        Some(parent) => parent.sub(&path.name),
        None => schema.attribute(path.urn.as_deref(), &path.name),
    };
    let leaf = match (&path.sub, attribute) {
        (Some(sub), Some(attribute)) => attribute.sub(sub),
        (None, attribute) => attribute,
        (Some(_), None) => None,
    };
    let container = if parent.is_some() {
        Some(context)
    } else {
        container(context, path.urn.as_deref(), schema)
    };
    let Some(top) = container.and_then(|container| get_ci(container, &path.name)) else {
        return (Vec::new(), leaf);
    };
    let elements: Vec<&Value> = match top {
        Value::Array(elements) => elements.iter().collect(),
        other => vec![other],
    };
    let mut values = Vec::new();
    for element in elements {
        match (&path.sub, element) {
            (Some(sub), element) => match get_ci(element, sub) {
                Some(Value::Array(inner)) => values.extend(inner.iter()),
                Some(value) => values.push(value),
                None => {}
            },
            // A complex value compared as a whole stands for its `value` sub-attribute
            // (`members eq "id"`, `manager eq "id"`).
            (None, Value::Object(_)) => {
                if let Some(value) = get_ci(element, "value") {
                    values.push(value);
                }
            }
            (None, value) => values.push(value),
        }
    }
    (values, leaf)
}

fn is_present(value: &Value) -> bool {
    match value {
        Value::Null => false,
        Value::String(text) => !text.is_empty(),
        Value::Array(items) => !items.is_empty(),
        Value::Object(fields) => !fields.is_empty(),
        Value::Bool(_) | Value::Number(_) => true,
    }
}

fn compare(
    candidate: &Value,
    op: CompareOp,
    literal: &Literal,
    attribute: Option<&Attribute>,
) -> bool {
    let kind = attribute.map(|attribute| attribute.kind);
    let case_exact = attribute.is_some_and(|attribute| attribute.case_exact);
    match (candidate, literal) {
        (Value::Null, Literal::Null) => op == CompareOp::Eq,
        (_, Literal::Null) => false,
        (Value::Bool(actual), Literal::Bool(expected)) => op == CompareOp::Eq && actual == expected,
        (Value::Bool(actual), Literal::String(text)) => {
            op == CompareOp::Eq && text.eq_ignore_ascii_case(if *actual { "true" } else { "false" })
        }
        (Value::String(actual), Literal::Bool(expected)) => {
            op == CompareOp::Eq
                && actual.eq_ignore_ascii_case(if *expected { "true" } else { "false" })
        }
        (Value::Number(actual), Literal::Number(expected)) => actual
            .as_f64()
            .and_then(|actual| actual.partial_cmp(expected))
            .is_some_and(|ordering| ordering_matches(op, ordering)),
        (Value::Number(actual), Literal::String(text)) => match text.parse::<f64>() {
            Ok(expected) => actual
                .as_f64()
                .and_then(|actual| actual.partial_cmp(&expected))
                .is_some_and(|ordering| ordering_matches(op, ordering)),
            Err(_) => false,
        },
        (Value::String(actual), Literal::Number(expected)) => {
            compare_strings(actual, &number_text(*expected), op, case_exact)
        }
        (Value::String(actual), Literal::String(expected)) => {
            if kind == Some(Kind::DateTime)
                && let (Ok(actual), Ok(expected)) = (
                    OffsetDateTime::parse(actual, &Rfc3339),
                    OffsetDateTime::parse(expected, &Rfc3339),
                )
            {
                return ordering_matches(op, actual.cmp(&expected));
            }
            compare_strings(actual, expected, op, case_exact)
        }
        _ => false,
    }
}

fn number_text(number: f64) -> String {
    if number.fract() == 0.0 && number.abs() < 1e15 {
        format!("{}", number as i64)
    } else {
        number.to_string()
    }
}

fn compare_strings(actual: &str, expected: &str, op: CompareOp, case_exact: bool) -> bool {
    let (actual, expected) = if case_exact {
        (actual.to_owned(), expected.to_owned())
    } else {
        (actual.to_lowercase(), expected.to_lowercase())
    };
    match op {
        CompareOp::Eq => actual == expected,
        CompareOp::Ne => actual != expected,
        CompareOp::Co => actual.contains(&expected),
        CompareOp::Sw => actual.starts_with(&expected),
        CompareOp::Ew => actual.ends_with(&expected),
        CompareOp::Gt | CompareOp::Ge | CompareOp::Lt | CompareOp::Le => {
            ordering_matches(op, actual.cmp(&expected))
        }
    }
}

fn ordering_matches(op: CompareOp, ordering: Ordering) -> bool {
    match op {
        CompareOp::Eq => ordering == Ordering::Equal,
        CompareOp::Ne => ordering != Ordering::Equal,
        CompareOp::Gt => ordering == Ordering::Greater,
        CompareOp::Ge => ordering != Ordering::Less,
        CompareOp::Lt => ordering == Ordering::Less,
        CompareOp::Le => ordering != Ordering::Greater,
        CompareOp::Co | CompareOp::Sw | CompareOp::Ew => false,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::schema::USER_RESOURCE;

    fn user() -> Value {
        json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
            "id": "2819c223-7f76-453a-919d-413861904646",
            "externalId": "Ext-1",
            "userName": "Bjensen",
            "active": true,
            "name": {"familyName": "Jensen", "givenName": "Barbara"},
            "emails": [
                {"value": "bjensen@example.com", "type": "work", "primary": true},
                {"value": "babs@jensen.org", "type": "home"}
            ],
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {
                "employeeNumber": "701984",
                "manager": {"value": "26118915-6090-4610-87e4-49d8ca9f808d"}
            },
            "meta": {"created": "2024-01-02T03:04:05Z", "lastModified": "2024-02-02T03:04:05.5Z"}
        })
    }

    fn check(filter: &str) -> bool {
        let parsed = parse(filter).unwrap_or_else(|error| panic!("{filter}: {error:?}"));
        validate(&parsed, &USER_RESOURCE).unwrap_or_else(|error| panic!("{filter}: {error:?}"));
        matches(&parsed, &user(), &USER_RESOURCE)
    }

    #[test]
    fn equality_on_user_name_ignores_case_of_value_attribute_and_operator() {
        assert!(check(r#"userName eq "bjensen""#));
        assert!(check(r#"UserName Eq "BJENSEN""#));
        assert!(!check(r#"userName eq "other""#));
    }

    #[test]
    fn external_id_and_id_are_case_exact() {
        assert!(check(r#"externalId eq "Ext-1""#));
        assert!(!check(r#"externalId eq "ext-1""#));
        assert!(check(r#"id eq "2819c223-7f76-453a-919d-413861904646""#));
    }

    #[test]
    fn multi_valued_attributes_match_on_any_value() {
        assert!(check(r#"emails.value eq "babs@jensen.org""#));
        assert!(check(r#"emails co "jensen.org""#));
        assert!(check(
            r#"emails[type eq "work" and value co "@example.com"]"#
        ));
        assert!(check(
            r#"emails[type eq "work"].value eq "bjensen@example.com""#
        ));
        assert!(!check(
            r#"emails[type eq "home"].value eq "bjensen@example.com""#
        ));
        assert!(check(r#"emails[primary eq true].value sw "bjensen""#));
    }

    #[test]
    fn precedence_is_not_then_and_then_or() {
        // a or (b and c): true via a.
        assert!(check(
            r#"userName eq "bjensen" or userName eq "x" and active eq false"#
        ));
        // (a or b) and c: false because c is false.
        assert!(!check(
            r#"(userName eq "bjensen" or userName eq "x") and active eq false"#
        ));
        assert!(check(r#"not (active eq false)"#));
        assert!(check(r#"not(active eq false) and userName pr"#));
        assert!(!check(r#"not (userName eq "bjensen")"#));
    }

    #[test]
    fn comparison_operators_and_types() {
        assert!(check(r#"userName sw "bj""#));
        assert!(check(r#"userName ew "SEN""#));
        assert!(check(r#"name.familyName co "ens""#));
        assert!(check(r#"userName gt "a" and userName lt "c""#));
        assert!(check(r#"meta.created gt "2023-12-31T00:00:00Z""#));
        assert!(check(r#"meta.lastModified ge "2024-02-02T03:04:05.5Z""#));
        assert!(check(r#"meta.Created lt "2024-01-02T03:04:06+00:00""#));
        assert!(check(r#"title ne "boss""#));
        assert!(!check(r#"title pr"#));
        assert!(check(r#"active eq true"#));
        assert!(check(r#"active eq "True""#));
    }

    #[test]
    fn urn_qualified_paths_reach_core_and_extension_attributes() {
        assert!(check(
            r#"urn:ietf:params:scim:schemas:core:2.0:User:userName eq "bjensen""#
        ));
        assert!(check(
            r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber eq "701984""#
        ));
        assert!(check(
            r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value eq "26118915-6090-4610-87e4-49d8ca9f808d""#
        ));
    }

    #[test]
    fn unquoted_values_are_read_as_strings() {
        assert!(check("externalId eq Ext-1"));
    }

    #[test]
    fn malformed_and_unknown_filters_are_invalid_filter_errors() {
        for bad in [
            "",
            "userName",
            "userName eq",
            r#"userName zz "x""#,
            r#"userName eq "x" and"#,
            r#"(userName eq "x""#,
            r#"emails[type eq "work""#,
            r#"userName eq "unterminated"#,
            r#"userName eq "x") "#,
            "not userName eq x",
        ] {
            let error = parse(bad).err().unwrap_or_else(|| panic!("{bad:?} parsed"));
            assert_eq!(error.scim_type, Some("invalidFilter"), "{bad:?}");
        }
        let unknown = parse(r#"nosuch eq "x""#).unwrap();
        assert_eq!(
            validate(&unknown, &USER_RESOURCE).unwrap_err().scim_type,
            Some("invalidFilter")
        );
        let unknown_sub = parse(r#"name.nosuch eq "x""#).unwrap();
        assert!(validate(&unknown_sub, &USER_RESOURCE).is_err());
        let deep = format!("{}userName pr{}", "(".repeat(100), ")".repeat(100));
        assert!(parse(&deep).is_err());
    }

    #[test]
    fn multi_byte_characters_near_the_start_of_an_attribute_are_invalid_filter_not_a_panic() {
        // Found by the robustness proptests: the URN check sliced at byte 4.
        for bad in ["a🂠 pr", "abcé eq 1", "߀ਅ", "emails[a🂠 pr]"] {
            let error = parse(bad).err().unwrap_or_else(|| panic!("{bad:?} parsed"));
            assert_eq!(error.scim_type, Some("invalidFilter"), "{bad:?}");
        }
        assert_eq!(split_urn("abcé"), (None, "abcé"));
        assert_eq!(split_urn("urn:é:x"), (Some("urn:é"), "x"));
    }
}
