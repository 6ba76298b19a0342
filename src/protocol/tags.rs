//! Message tags as enums, so session code never dispatches on raw bytes.

macro_rules! tag_enum {
    ($(#[$m:meta])* $name:ident { $($(#[$vm:meta])* $variant:ident = $byte:literal,)* }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vm])* $variant,)*
            /// A tag the proxy does not know; relayed untouched.
            Other(u8),
        }

        impl From<u8> for $name {
            #[inline]
            fn from(b: u8) -> Self {
                match b {
                    $($byte => $name::$variant,)*
                    other => $name::Other(other),
                }
            }
        }

        impl From<$name> for u8 {
            #[inline]
            fn from(t: $name) -> u8 {
                match t {
                    $($name::$variant => $byte,)*
                    $name::Other(b) => b,
                }
            }
        }
    };
}

tag_enum! {
    /// Tags of messages a client (frontend) sends after startup.
    FrontendTag {
        Query = b'Q',
        Parse = b'P',
        Bind = b'B',
        Describe = b'D',
        Execute = b'E',
        Sync = b'S',
        Flush = b'H',
        Close = b'C',
        CopyData = b'd',
        CopyDone = b'c',
        CopyFail = b'f',
        FunctionCall = b'F',
        Terminate = b'X',
        /// PasswordMessage, SASLInitialResponse and SASLResponse share this tag.
        Password = b'p',
    }
}

tag_enum! {
    /// Tags of messages the server (backend) sends.
    BackendTag {
        Authentication = b'R',
        BackendKeyData = b'K',
        ParameterStatus = b'S',
        ReadyForQuery = b'Z',
        ErrorResponse = b'E',
        NoticeResponse = b'N',
        NotificationResponse = b'A',
        RowDescription = b'T',
        DataRow = b'D',
        ParameterDescription = b't',
        CommandComplete = b'C',
        EmptyQueryResponse = b'I',
        ParseComplete = b'1',
        BindComplete = b'2',
        CloseComplete = b'3',
        NoData = b'n',
        PortalSuspended = b's',
        CopyInResponse = b'G',
        CopyOutResponse = b'H',
        CopyBothResponse = b'W',
        CopyData = b'd',
        CopyDone = b'c',
        FunctionCallResponse = b'V',
        NegotiateProtocolVersion = b'v',
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_round_trip() {
        for b in 0..=255u8 {
            assert_eq!(u8::from(FrontendTag::from(b)), b);
            assert_eq!(u8::from(BackendTag::from(b)), b);
        }
        assert_eq!(FrontendTag::from(b'Q'), FrontendTag::Query);
        assert_eq!(BackendTag::from(b'Z'), BackendTag::ReadyForQuery);
        assert_eq!(BackendTag::from(b'!'), BackendTag::Other(b'!'));
    }
}
