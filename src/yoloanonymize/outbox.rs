//! Messages the element queues while it holds its state lock, and posts once the lock is
//! released: an application's synchronous bus handler runs on the posting thread and may read
//! any property, so nothing is ever posted with a lock held.

use gst::prelude::*;

use super::CAT;
use crate::stats::{self, STATS_MESSAGE};

/// Messages to post once the state lock is released.
pub(super) struct Outbox {
    element: gst::Element,
    messages: Vec<gst::Message>,
}

impl Outbox {
    pub fn new(element: &impl IsA<gst::Element>) -> Self {
        Self {
            element: element.clone().upcast(),
            messages: Vec::new(),
        }
    }

    /// Logs an error and queues its message; returns the flow error to stop with.
    pub fn error(
        &mut self,
        domain: impl gst::MessageErrorDomain,
        text: &str,
        debug: Option<&str>,
    ) -> gst::FlowError {
        gst::error!(CAT, obj = self.element, "{text}");
        self.messages.push(
            gst::message::Error::builder(domain, text)
                .debug_if_some(debug)
                .src(&self.element)
                .build(),
        );
        gst::FlowError::Error
    }

    /// Logs a warning and queues its message.
    pub fn warning(&mut self, domain: impl gst::MessageErrorDomain, text: &str) {
        gst::warning!(CAT, obj = self.element, "{text}");
        self.messages.push(
            gst::message::Warning::builder(domain, text)
                .src(&self.element)
                .build(),
        );
    }

    /// Queues an element message.
    pub fn element(&mut self, structure: gst::Structure) {
        self.messages.push(
            gst::message::Element::builder(structure)
                .src(&self.element)
                .build(),
        );
    }

    /// Queues a statistics message with these fields.
    pub fn stats(&mut self, fields: Vec<(&'static str, stats::Value)>) {
        self.element(stats_structure(fields));
    }

    /// Posts everything queued, in order. Call with no lock held.
    pub fn post(self) {
        for m in self.messages {
            let _ = self.element.post_message(m);
        }
    }
}

pub(super) fn stats_structure(fields: Vec<(&'static str, stats::Value)>) -> gst::Structure {
    let mut b = gst::Structure::builder(STATS_MESSAGE);
    for (name, v) in fields {
        b = match v {
            stats::Value::Bool(x) => b.field(name, x),
            stats::Value::U64(x) => b.field(name, x),
            stats::Value::F64(x) => b.field(name, x),
        };
    }
    b.build()
}
