//! The parse error: every failure to turn Dockerfile text into an AST names a 1-based line.

use wharf_types::{Classify, ErrorKind};

/// A Dockerfile that cannot be parsed. Every variant carries the 1-based line where the problem
/// starts and a message in Docker's (BuildKit's) wording where Docker has one, so the builder can
/// print `dockerfile parse error on line 3: unknown instruction: FOO (did you mean FROM?)`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// A parser directive at the top of the file is wrong: `invalid escape token '%' does not
    /// match ` or \`, `only one escape parser directive can be used`.
    #[error("dockerfile parse error on line {line}: {message}")]
    Directive { line: usize, message: String },
    /// A heredoc body never reached its terminator line (`unterminated heredoc`).
    #[error("dockerfile parse error on line {line}: {message}")]
    Heredoc { line: usize, message: String },
    /// One instruction is malformed: unknown keyword, wrong argument count, bad flag, bad JSON in
    /// SHELL, invalid HEALTHCHECK option, bad EXPOSE port, …
    #[error("dockerfile parse error on line {line}: {message}")]
    Instruction { line: usize, message: String },
    /// The file holds no instruction at all (`file with no instructions`), or no FROM
    /// (`no build stage in current context`, `dockerfile contains no stages to build`).
    #[error("dockerfile parse error on line {line}: {message}")]
    Structure { line: usize, message: String },
    /// `--target` names no stage: `target stage "x" could not be found`. Line 0.
    #[error("{message}")]
    Target { message: String },
}

impl ParseError {
    /// The 1-based line the error points at (0 for an empty file and for [`ParseError::Target`]).
    pub fn line(&self) -> usize {
        match self {
            ParseError::Directive { line, .. }
            | ParseError::Heredoc { line, .. }
            | ParseError::Instruction { line, .. }
            | ParseError::Structure { line, .. } => *line,
            ParseError::Target { .. } => 0,
        }
    }

    /// The message without the `dockerfile parse error on line N: ` prefix.
    pub fn message(&self) -> &str {
        match self {
            ParseError::Directive { message, .. }
            | ParseError::Heredoc { message, .. }
            | ParseError::Instruction { message, .. }
            | ParseError::Structure { message, .. }
            | ParseError::Target { message } => message,
        }
    }

    pub(crate) fn instruction(line: usize, message: impl Into<String>) -> Self {
        ParseError::Instruction { line, message: message.into() }
    }
}

impl Classify for ParseError {
    fn kind(&self) -> ErrorKind {
        ErrorKind::InvalidArgument
    }
}
