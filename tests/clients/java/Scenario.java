// pgjdbc scenario: PreparedStatement batch insert (pipelined Parse/Bind/Execute), a lookup
// executed past prepareThreshold (server-side named statement, binary transfer), update,
// delete, join, and the refusal as PSQLException with SQLSTATE 0A000; sslmode=verify-full.
// Run: java -cp /usr/share/java/postgresql.jar tests/clients/java/Scenario.java
// Connection facts come from the environment (see tests/clients/python/common.py).

import java.math.BigDecimal;
import java.sql.*;
import java.time.*;
import java.util.*;
import org.postgresql.util.PGobject;
import org.postgresql.util.PSQLException;

public class Scenario {
    static final String TAG = "pgjdbc";
    static final boolean ENCRYPTED = !"plain".equals(System.getenv().getOrDefault("PGCLOAK_EXPECT", "encrypted"));
    static final String[] COLUMNS = {"ssn", "email", "age", "visits", "score", "balance", "active", "born",
        "wake", "seen", "seen_tz", "ext_id", "profile", "photo", "small", "ratio", "doc"};
    static final List<String> failures = new ArrayList<>();
    static int checks = 0;

    static String env(String name) {
        String v = System.getenv(name);
        if (v == null) throw new IllegalStateException("missing environment variable " + name);
        return v;
    }

    static Connection connect(String port, String user, String password) throws SQLException {
        String url = "jdbc:postgresql://" + env("PGCLOAK_HOST") + ":" + port + "/" + env("PGCLOAK_DB")
            + "?sslmode=verify-full&sslrootcert=" + env("PGCLOAK_SSLROOTCERT") + "&connectTimeout=20";
        Properties p = new Properties();
        p.setProperty("user", user);
        p.setProperty("password", password);
        return DriverManager.getConnection(url, p);
    }

    static boolean check(boolean ok, String what) {
        checks++;
        if (!ok) failures.add(what);
        return ok;
    }

    static boolean equal(String what, Object got, Object want) {
        boolean ok = Objects.deepEquals(got, want)
            || (got instanceof BigDecimal g && want instanceof BigDecimal w && g.compareTo(w) == 0);
        return check(ok, what + ": got " + show(got) + ", want " + show(want));
    }

    static String show(Object o) {
        return o instanceof byte[] b ? "bytes" + Arrays.toString(b) : String.valueOf(o);
    }

    static PGobject json(String type, String text) throws SQLException {
        PGobject o = new PGobject();
        o.setType(type);
        o.setValue(text);
        return o;
    }

    /** The values of one person, in column order, as the driver returns them (getObject with a class). */
    static Object[] person(int n) {
        if (n == 2) {
            Object[] v = new Object[COLUMNS.length];
            v[0] = TAG + "-200";
            v[1] = TAG + ".two@example.com";
            return v;
        }
        if (n == 1) {
            return new Object[] {TAG + "-100", TAG + ".one@example.com", 41, 9_000_000_001L, 3.25,
                new BigDecimal("12345.6789"), true, LocalDate.of(1980, 2, 29), LocalTime.of(7, 30, 15, 500_000_000),
                LocalDateTime.of(2024, 3, 1, 12, 34, 56, 789_000_000),
                OffsetDateTime.of(2024, 3, 1, 12, 34, 56, 789_000_000, ZoneOffset.UTC),
                UUID.fromString("a3bb189e-8bf9-3888-9912-ace4e6543002"), "{\"a\": 1, \"tags\": [\"x\", \"y\"]}",
                new byte[] {0, 1, (byte) 0xfe, (byte) 0xff, 0x70}, (short) 7, 0.5f, "{\"k\":\"v\",\"n\":[1,2]}"};
        }
        return new Object[] {TAG + "-300", TAG + ".trois+é@example.com", -5, -1L, -0.125,
            new BigDecimal("-0.01"), false, LocalDate.of(2001, 12, 31), LocalTime.of(23, 59, 59),
            LocalDateTime.of(1999, 12, 31, 23, 59, 59), OffsetDateTime.of(1999, 12, 31, 23, 59, 59, 0, ZoneOffset.UTC),
            UUID.fromString("5df41b6a-9d4b-4f1a-8f0e-2c8d8f9b1a11"), "[]", new byte[0], (short) -32768, -1.5f, "[]"};
    }

    static final Class<?>[] CLASSES = {String.class, String.class, Integer.class, Long.class, Double.class,
        BigDecimal.class, Boolean.class, LocalDate.class, LocalTime.class, LocalDateTime.class,
        OffsetDateTime.class, UUID.class, String.class, byte[].class, Short.class, Float.class, String.class};

    static void bind(PreparedStatement ps, int first, Object[] v) throws SQLException {
        for (int i = 0; i < v.length; i++) {
            int at = first + i;
            String c = COLUMNS[i];
            if (c.equals("profile")) ps.setObject(at, v[i] == null ? null : json("jsonb", (String) v[i]));
            else if (c.equals("doc")) ps.setObject(at, v[i] == null ? null : json("json", (String) v[i]));
            else if (v[i] == null) ps.setNull(at, sqlType(c));
            else if (v[i] instanceof byte[] b) ps.setBytes(at, b);
            else ps.setObject(at, v[i]);
        }
    }

    static int sqlType(String c) {
        return switch (c) {
            case "age" -> Types.INTEGER; case "visits" -> Types.BIGINT; case "score" -> Types.DOUBLE;
            case "balance" -> Types.NUMERIC; case "active" -> Types.BOOLEAN; case "born" -> Types.DATE;
            case "wake" -> Types.TIME; case "seen" -> Types.TIMESTAMP; case "seen_tz" -> Types.TIMESTAMP_WITH_TIMEZONE;
            case "ext_id" -> Types.OTHER; case "photo" -> Types.BINARY; case "small" -> Types.SMALLINT;
            case "ratio" -> Types.REAL; default -> Types.VARCHAR;
        };
    }

    static void checkRow(String label, ResultSet rs, Object[] want) throws SQLException {
        for (int i = 0; i < COLUMNS.length; i++) {
            Object got = CLASSES[i] == String.class ? rs.getString(COLUMNS[i])
                : CLASSES[i] == byte[].class ? rs.getBytes(COLUMNS[i]) : rs.getObject(COLUMNS[i], CLASSES[i]);
            if (got instanceof OffsetDateTime t) got = t.withOffsetSameInstant(ZoneOffset.UTC);
            Object w = want[i];
            if (COLUMNS[i].equals("profile") && got != null) { got = ((String) got).replace(" ", ""); w = ((String) w).replace(" ", ""); }
            equal(label + "." + COLUMNS[i], got, w);
        }
    }

    static void scenario() throws Exception {
        String cols = String.join(", ", COLUMNS);
        String insert = "INSERT INTO compat_people (client, note, " + cols + ") VALUES (?, ?"
            + ", ?".repeat(COLUMNS.length) + ")";
        String select = "SELECT id, " + cols + " FROM compat_people WHERE ssn = ?";
        try (Connection c = connect(env("PGCLOAK_PORT"), env("PGCLOAK_USER"), env("PGCLOAK_PASSWORD"))) {
            try (PreparedStatement ps = c.prepareStatement(insert)) {
                for (int n = 1; n <= 3; n++) {
                    ps.setString(1, TAG);
                    ps.setString(2, "note " + n + " ü");
                    bind(ps, 3, person(n));
                    ps.addBatch();
                }
                equal("batch insert counts", Arrays.stream(ps.executeBatch()).sum(), 3);
            }
            try (PreparedStatement ps = c.prepareStatement(
                    "INSERT INTO compat_orders (client, person_ssn, amount) VALUES (?, ?, ?)")) {
                for (int a : new int[] {10, 25}) {
                    ps.setString(1, TAG);
                    ps.setString(2, TAG + "-100");
                    ps.setInt(3, a);
                    ps.addBatch();
                }
                ps.executeBatch();
            }
            // Past prepareThreshold (5): the driver switches to a named server-side statement.
            try (PreparedStatement ps = c.prepareStatement(select)) {
                for (int round = 0; round < 4; round++) {
                    for (int n = 1; n <= 3; n++) {
                        Object[] want = person(n);
                        ps.setString(1, (String) want[0]);
                        try (ResultSet rs = ps.executeQuery()) {
                            if (check(rs.next(), "no row for " + want[0] + " round " + round)) {
                                checkRow(want[0] + " round " + round, rs, want);
                                check(!rs.next(), "two rows for " + want[0]);
                            }
                        }
                    }
                }
            }
            String newEmail = TAG + ".one.new@example.com";
            try (PreparedStatement ps = c.prepareStatement("UPDATE compat_people SET email = ?, age = ? WHERE ssn = ?")) {
                ps.setString(1, newEmail);
                ps.setInt(2, 42);
                ps.setString(3, TAG + "-100");
                equal("update count", ps.executeUpdate(), 1);
            }
            try (PreparedStatement ps = c.prepareStatement("SELECT " + cols + " FROM compat_people WHERE email = ?")) {
                ps.setString(1, newEmail);
                try (ResultSet rs = ps.executeQuery()) {
                    Object[] want = person(1);
                    want[1] = newEmail;
                    want[2] = 42;
                    if (check(rs.next(), "no row for the new email")) checkRow("updated", rs, want);
                }
            }
            try (PreparedStatement ps = c.prepareStatement("DELETE FROM compat_people WHERE ssn = ?")) {
                ps.setString(1, TAG + "-300");
                equal("delete count", ps.executeUpdate(), 1);
            }
            try (PreparedStatement ps = c.prepareStatement("SELECT count(*) FROM compat_people WHERE client = ?")) {
                ps.setString(1, TAG);
                try (ResultSet rs = ps.executeQuery()) { rs.next(); equal("people left", rs.getLong(1), 2L); }
            }
            try (PreparedStatement ps = c.prepareStatement("SELECT p.ssn, p.email, o.amount FROM compat_people p "
                    + "JOIN compat_orders o ON o.person_ssn = p.ssn WHERE p.client = ? ORDER BY o.amount")) {
                ps.setString(1, TAG);
                List<String> got = new ArrayList<>();
                try (ResultSet rs = ps.executeQuery()) {
                    while (rs.next()) got.add(rs.getString(1) + "|" + rs.getString(2) + "|" + rs.getInt(3));
                }
                equal("join", got, List.of(TAG + "-100|" + newEmail + "|10", TAG + "-100|" + newEmail + "|25"));
            }
            if (ENCRYPTED) {
                SQLException err = null;
                try (Statement st = c.createStatement()) {
                    st.executeQuery("SELECT id FROM compat_people WHERE ssn LIKE '1%'");
                } catch (SQLException e) {
                    err = e;
                }
                check(err instanceof PSQLException, "LIKE: error " + err + ", want PSQLException");
                equal("LIKE: SQLSTATE", err == null ? null : err.getSQLState(), "0A000");
            }
            try (Statement st = c.createStatement(); ResultSet rs = st.executeQuery("SELECT 1")) {
                rs.next();
                equal("session usable after the refusal", rs.getInt(1), 1);
            }
        }
        if (ENCRYPTED) atRest();
    }

    static void atRest() throws SQLException {
        try (Connection d = connect(env("DIRECT_PORT"), env("DIRECT_USER"), env("DIRECT_PASSWORD"));
             PreparedStatement ps = d.prepareStatement("SELECT " + String.join(", ", COLUMNS)
                 + " FROM compat_people WHERE client = ?")) {
            ps.setString(1, TAG);
            int rows = 0;
            try (ResultSet rs = ps.executeQuery()) {
                while (rs.next()) {
                    rows++;
                    for (String c : COLUMNS) {
                        byte[] b = rs.getBytes(c);
                        if (b == null) continue;
                        check(b.length > 6 && b[0] == 1 && (b[1] == 1 || b[1] == 2), "at rest: " + c + " is not an envelope");
                        String s = new String(b, java.nio.charset.StandardCharsets.ISO_8859_1);
                        check(!s.contains(TAG + "-"), "at rest: plaintext visible in " + c);
                    }
                }
            }
            equal("at rest: people rows", rows, 2);
        }
    }

    public static void main(String[] args) {
        try {
            scenario();
        } catch (Exception e) {
            java.io.StringWriter w = new java.io.StringWriter();
            e.printStackTrace(new java.io.PrintWriter(w));
            failures.add("unexpected exception: " + w);
        }
        if (!failures.isEmpty()) {
            System.out.println(TAG + ": " + failures.size() + " of " + checks + " checks FAILED");
            for (String f : failures) System.out.println("  - " + f);
            System.exit(1);
        }
        System.out.println(TAG + ": all " + checks + " checks passed");
        System.exit(0);
    }
}
