//! Small readers of pg_query parse-tree nodes shared by every analysis step (a leaf).

use pg_query::NodeEnum;
use pg_query::protobuf::Node;

/// The string of a `String` node.
pub(crate) fn sval(n: &Node) -> Option<&str> {
    match n.node.as_ref() {
        Some(NodeEnum::String(s)) => Some(s.sval.as_str()),
        _ => None,
    }
}
