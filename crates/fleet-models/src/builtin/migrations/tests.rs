//! The grouping and judging of migrations, tool by tool.
use super::*;
use fleet_core::flags::FlagSeverity;

fn doc(path: &str, text: &str) -> Document {
    Document {
        path: path.into(),
        text: text.into(),
    }
}

fn run(docs: &[Document]) -> Vec<Migration> {
    let refs: Vec<&Document> = docs.iter().filter(|d| is_migration(&d.path)).collect();
    analyze(&refs)
}

fn verdicts(ms: &[Migration]) -> Vec<(&str, bool)> {
    ms.iter().map(|m| (m.name.as_str(), m.reversible)).collect()
}

#[test]
fn recognises_migration_paths() {
    for yes in [
        "migrations/0041_a.up.sql",
        "db/migrate/20240101000000_add_x.rb",
        "alembic/versions/ab12_add.py",
        "app/migrations/0003_auto.py",
        "sql/V3__orders.sql",
        "x/0001_init.down.sql",
    ] {
        assert!(is_migration(yes), "{yes}");
    }
    for no in [
        "docs/migrations.md",
        "db/schema.rb",
        "app/migrations/__init__.py",
        "src/update.sql.md",
        "scripts/fix.sql",
    ] {
        assert!(!is_migration(no), "{no}");
    }
}

#[test]
fn up_down_pairs_and_missing_downs() {
    let ms = run(&[
        doc("migrations/0001_a.up.sql", "CREATE TABLE a (id int);\n"),
        doc("migrations/0001_a.down.sql", "DROP TABLE a;\n"),
        doc(
            "migrations/0002_b.up.sql",
            "-- drop it\nALTER TABLE a DROP COLUMN b;\n",
        ),
        doc(
            "migrations/0003_c.up.sql",
            "ALTER TABLE a ADD COLUMN c int;\n",
        ),
        doc("migrations/0003_c.down.sql", "-- nothing to do\n"),
    ]);
    assert_eq!(
        verdicts(&ms),
        vec![("0001_a", true), ("0002_b", false), ("0003_c", false)]
    );
    assert!(
        ms[0].destructive.is_empty(),
        "DROP in a down file is expected"
    );
    assert_eq!(ms[1].destructive[0].0, "DROP COLUMN");
    assert_eq!(ms[1].destructive[0].1.line, 2);
    assert_eq!(
        ms[1].severity(),
        Some(fleet_core::flags::FlagSeverity::High)
    );
    assert_eq!(ms[1].number.as_deref(), Some("0002"));
    assert!(ms[2].reason.contains("no statements"), "{}", ms[2].reason);
}

#[test]
fn flyway_undo_scripts_pair_with_versions() {
    let ms = run(&[
        doc("db/V3__orders.sql", "CREATE TABLE orders (id int);\n"),
        doc("db/U3__orders.sql", "DROP TABLE orders;\n"),
        doc("db/V4__drop_legacy.sql", "DROP TABLE legacy;\n"),
    ]);
    assert_eq!(
        verdicts(&ms),
        vec![("V3__orders", true), ("V4__drop_legacy", false)]
    );
    assert_eq!(ms[1].reason, "no undo (U) script");
    assert_eq!(ms[1].destructive[0].0, "DROP TABLE");
}

#[test]
fn flyway_versions_before_the_first_undo_script_predate_the_convention() {
    let ms = run(&[
        doc(
            "db/V1__init.sql",
            "CREATE TABLE items (id int);
",
        ),
        doc(
            "db/V2_1__purge.sql",
            "DELETE FROM items;
",
        ),
        doc(
            "db/V3__orders.sql",
            "CREATE TABLE orders (id int);
",
        ),
        doc(
            "db/U3__orders.sql",
            "DROP TABLE orders;
",
        ),
        doc(
            "db/V10__audit.sql",
            "CREATE TABLE audit (id int);
",
        ),
    ]);
    let by_name = |n: &str| ms.iter().find(|m| m.name == n).expect(n);
    // Forward-only by the project's convention at the time: not flagged
    // unless it loses data (V2.1 deletes rows: still a finding).
    assert!(
        by_name("V1__init").severity().is_none(),
        "{:?}",
        by_name("V1__init")
    );
    assert!(by_name("V2_1__purge").severity().is_some());
    // From V3 on undo scripts are kept: V10 (compared as a number) misses one.
    assert_eq!(by_name("V10__audit").reason, "no undo (U) script");
    assert!(by_name("V10__audit").severity().is_some());
}

#[test]
fn rails_change_up_down_and_irreversible() {
    let ms = run(&[
        doc(
            "db/migrate/1_add.rb",
            "class Add < ActiveRecord::Migration[7.1]\n  def change\n    add_column :users, :x, :string\n  end\nend\n",
        ),
        doc(
            "db/migrate/2_up_only.rb",
            "class UpOnly < ActiveRecord::Migration[7.1]\n  def up\n    remove_column :users, :legacy\n  end\nend\n",
        ),
        doc(
            "db/migrate/3_raise.rb",
            "class R < ActiveRecord::Migration[7.1]\n  def up\n    drop_table :carts\n  end\n\n  def down\n    raise ActiveRecord::IrreversibleMigration\n  end\nend\n",
        ),
        doc(
            "db/migrate/4_both.rb",
            "class B < ActiveRecord::Migration[7.1]\n  def up\n    User.in_batches.update_all(active: true)\n  end\n  def down\n    remove_column :users, :active\n  end\nend\n",
        ),
        doc(
            "db/migrate/5_exec.rb",
            "class E < ActiveRecord::Migration[7.1]\n  def change\n    execute \"UPDATE users SET a = 1\"\n  end\nend\n",
        ),
    ]);
    assert_eq!(
        verdicts(&ms),
        vec![
            ("1_add", true),
            ("2_up_only", false),
            ("3_raise", false),
            ("4_both", true),
            ("5_exec", false)
        ]
    );
    assert_eq!(ms[1].reason, "no `def down`");
    assert_eq!(ms[2].evidence.line, 7);
    assert!(
        ms[3].destructive.is_empty(),
        "remove_column in def down is not forward"
    );
    assert_eq!(ms[3].backfill[0].line, 3);
    assert_eq!(ms[4].backfill[0].line, 3);
}

#[test]
fn alembic_downgrade_pass_is_irreversible() {
    let ms = run(&[
        doc(
            "alembic/versions/a1_drop.py",
            "def upgrade():\n    op.drop_column('users', 'fax')\n\n\ndef downgrade():\n    pass\n",
        ),
        doc(
            "alembic/versions/b2_add.py",
            "def upgrade():\n    op.add_column('users', sa.Column('x', sa.Integer()))\n\n\ndef downgrade():\n    op.drop_column('users', 'x')\n",
        ),
    ]);
    assert_eq!(verdicts(&ms), vec![("a1_drop", false), ("b2_add", true)]);
    assert_eq!(ms[0].destructive[0].0, "op.drop_column");
    assert!(ms[0].reason.contains("empty"), "{}", ms[0].reason);
    assert!(ms[1].destructive.is_empty());
}

#[test]
fn django_run_python_without_reverse_is_irreversible() {
    let ms = run(&[
        doc(
            "shop/migrations/0007_fill.py",
            "class Migration(migrations.Migration):\n    operations = [\n        migrations.RunPython(fill_prices),\n    ]\n",
        ),
        doc(
            "shop/migrations/0008_fill2.py",
            "class Migration(migrations.Migration):\n    operations = [\n        migrations.RunPython(\n            fill, reverse_code=unfill\n        ),\n        migrations.RemoveField(model_name='a', name='b'),\n    ]\n",
        ),
    ]);
    assert_eq!(
        verdicts(&ms),
        vec![("0007_fill", false), ("0008_fill2", true)]
    );
    assert_eq!(ms[0].backfill[0].line, 3);
    assert_eq!(ms[1].destructive[0].0, "RemoveField");
}

#[test]
fn plain_sql_with_down_sections() {
    let ms = run(&[
        doc(
            "db/migrations/20240101_a.sql",
            "-- migrate:up\nCREATE TABLE a (id int);\n\n-- migrate:down\nDROP TABLE a;\n",
        ),
        doc(
            "db/migrations/20240102_b.sql",
            "-- +goose Up\nTRUNCATE audit_log;\n-- +goose Down\n",
        ),
        doc("db/migrations/20240103_c.sql", "DELETE FROM sessions;\n"),
        doc(
            "db/migrations/20240104_d.sql",
            "--changeset bob:1\nCREATE TABLE d (id int);\n--rollback DROP TABLE d;\n",
        ),
    ]);
    assert_eq!(
        verdicts(&ms),
        vec![
            ("20240101_a", true),
            ("20240102_b", false),
            ("20240103_c", false),
            ("20240104_d", true)
        ]
    );
    assert!(ms[0].destructive.is_empty());
    assert_eq!(ms[1].destructive[0].0, "TRUNCATE");
    assert_eq!(ms[2].destructive[0].0, "DELETE FROM");
}

#[test]
fn backfills_and_their_scale() {
    let ms = run(&[doc(
        "migrations/0044_fill.up.sql",
        "-- ~38M rows, 40-60 minutes\nUPDATE invoices AS i\n   SET c = 1;\nCREATE TABLE t (a int REFERENCES x ON UPDATE CASCADE);\nINSERT INTO b SELECT * FROM a;\n",
    )]);
    assert_eq!(
        ms[0].backfill.iter().map(|c| c.line).collect::<Vec<_>>(),
        vec![2, 5]
    );
    assert_eq!(ms[0].scale.as_ref().map(|c| c.line), Some(1));
}

#[test]
fn directory_pairs() {
    let ms = run(&[
        doc(
            "migrations/2020-01-01_init/up.sql",
            "CREATE TABLE a (id int);\n",
        ),
        doc("migrations/2020-01-01_init/down.sql", "DROP TABLE a;\n"),
        doc("migrations/up/005_x.sql", "DROP TABLE z;\n"),
    ]);
    assert_eq!(
        verdicts(&ms),
        vec![("2020-01-01_init", true), ("005_x", false)]
    );
}

fn one(path: &str, text: &str) -> Migration {
    let ms = run(&[doc(path, text)]);
    assert_eq!(ms.len(), 1, "{path}: {ms:#?}");
    ms.into_iter().next().unwrap_or_else(|| unreachable!())
}

#[test]
fn rails_change_table_and_guarded_blocks() {
    let m = one(
        "db/migrate/1_t.rb",
        "class T < ActiveRecord::Migration[7.1]\n  def change\n    change_table :users do |t|\n      t.remove :fax\n    end\n  end\nend\n",
    );
    assert!(!m.reversible, "{m:#?}");
    assert_eq!(m.evidence.line, 4);
    let m = one(
        "db/migrate/2_t.rb",
        "class T < ActiveRecord::Migration[7.1]\n  def change\n    change_table :users do |t|\n      t.remove :fax, type: :string\n    end\n  end\nend\n",
    );
    assert!(m.reversible, "{m:#?}");
    assert_eq!(m.destructive[0].0, "remove");
    // SQL inside reversible's dir.up runs forward; dir.down's does not.
    let m = one(
        "db/migrate/3_t.rb",
        "class T < ActiveRecord::Migration[7.1]\n  def change\n    reversible do |dir|\n      dir.up { execute \"DELETE FROM carts\" }\n      dir.down do\n        execute \"DROP TABLE x\"\n      end\n    end\n  end\nend\n",
    );
    assert!(m.reversible, "{m:#?}");
    assert_eq!(
        m.destructive
            .iter()
            .map(|(op, c)| (op.as_str(), c.line))
            .collect::<Vec<_>>(),
        vec![("DELETE FROM", 4)]
    );
}

#[test]
fn js_shapes_of_up_and_down() {
    let m = one(
        "migrations/1_a.js",
        "exports.up = (knex) => knex.schema.dropTable('a');\nexports.down = async () => {};\n",
    );
    assert!(!m.reversible);
    assert_eq!(m.destructive[0].0, "dropTable");
    assert_eq!(m.evidence.line, 2);
    let m = one(
        "migrations/2_b.js",
        "module.exports = {\n  up: async (qi) => {\n    await qi.addColumn('u', 'x', { type: 'TEXT' });\n  },\n  down: (qi) => qi.removeColumn('u', 'x'),\n};\n",
    );
    assert!(m.reversible, "{m:#?}");
    assert!(
        m.destructive.is_empty(),
        "removeColumn in down is not forward"
    );
    // A helper module beside the migrations runs nothing: no migration.
    assert!(
        run(&[doc(
            "migrations/helpers.js",
            "module.exports = { log: console.log };\n"
        )])
        .is_empty()
    );
}

#[test]
fn django_reverse_functions_are_not_forward() {
    let m = one(
        "shop/migrations/0002_x.py",
        "from django.db import migrations\n\n\ndef forwards(apps, schema_editor):\n    Item = apps.get_model('shop', 'Item')\n    Item.objects.filter(price=None).update(price=0)\n\n\ndef backwards(apps, schema_editor):\n    Item = apps.get_model('shop', 'Item')\n    Item.objects.filter(price=0).delete()\n\n\nclass Migration(migrations.Migration):\n    operations = [\n        migrations.RunPython(code=forwards, reverse_code=backwards),\n    ]\n",
    );
    assert!(m.reversible, "{m:#?}");
    assert!(m.destructive.is_empty(), "{m:#?}");
    assert_eq!(m.backfill[0].line, 16);
    assert_eq!(
        m.evidence.line, 16,
        "the reversible evidence is the operation, not the import"
    );
}

#[test]
fn flyway_without_undo_scripts_is_forward_only() {
    let ms = run(&[
        doc("db/migration/V1__init.sql", "CREATE TABLE a (id int);\n"),
        doc("db/migration/V2__drop.sql", "DROP TABLE b;\n"),
        doc(
            "db/migration/R__view.sql",
            "CREATE OR REPLACE VIEW v AS SELECT 1;\n",
        ),
    ]);
    let severities: Vec<_> = ms.iter().map(|m| (m.name.as_str(), m.severity())).collect();
    assert_eq!(
        severities,
        vec![
            ("R__view", None),
            ("V1__init", None),
            ("V2__drop", Some(FlagSeverity::High))
        ]
    );
}

#[test]
fn liquibase_changesets_and_rollbacks() {
    let xml = "<databaseChangeLog>\n  <changeSet id=\"1\" author=\"a\">\n    <createTable tableName=\"t\"/>\n  </changeSet>\n  <changeSet id=\"2\" author=\"a\">\n    <dropTable tableName=\"t\"/>\n    <rollback/>\n  </changeSet>\n  <changeSet id=\"3\" author=\"a\">\n    <sql>DELETE FROM t</sql>\n    <rollback>\n      <sql>SELECT 1</sql>\n    </rollback>\n  </changeSet>\n</databaseChangeLog>\n";
    let d = doc("db/changelog/changes.xml", xml);
    assert!(is_migration_doc(&d));
    let ms = analyze(&[&d]);
    let verdicts: Vec<_> = ms
        .iter()
        .map(|m| (m.name.as_str(), m.reversible, m.evidence.line))
        .collect();
    assert_eq!(
        verdicts,
        vec![
            ("changes changeset 1", true, 3),
            ("changes changeset 2", false, 7),
            ("changes changeset 3", true, 12)
        ]
    );
    assert_eq!(ms[2].destructive[0].0, "DELETE FROM");
}

#[test]
fn any_text_under_any_name_is_read_without_panicking() {
    const PIECES: &[&str] = &[
        "def change",
        "def up",
        "def down",
        "  ",
        "\n",
        "end",
        "do",
        ", do: :ok",
        "{",
        "}",
        "(",
        ")",
        "\"",
        "'",
        "\"\"\"",
        "RunPython(",
        "RunSQL(",
        "reverse_sql=",
        "noop",
        "operations = [",
        "state_operations=[",
        "<changeSet id=\"1\">",
        "</changeSet>",
        "<rollback>",
        "<rollback/>",
        "- changeSet:",
        "rollback:",
        "--changeset a:1",
        "--rollback DROP TABLE x;",
        "-- migrate:down",
        "-- +goose Up",
        "/*",
        "*/",
        "Warnings:",
        "- will fail",
        "exports.down = function () {",
        "async up(q) {",
        "=>",
        "void Up(MigrationBuilder b)",
        "void Down(MigrationBuilder b)",
        "remove :x",
        "execute ",
        "drop_table :t",
        "DROP TABLE t;",
        "DELETE FROM t;",
        "UPDATE t SET a = 1;",
        "raise",
        "throw ",
        "é",
        "\u{2014}",
        "\r\n",
        "\t",
    ];
    const PATHS: &[&str] = &[
        "db/migrate/1_x.rb",
        "app/migrations/0001_x.py",
        "alembic/versions/a_x.py",
        "migrations/1_x.js",
        "migrations/1_x.ts",
        "priv/repo/migrations/1_x.exs",
        "Migrations/1_X.cs",
        "db/migration/V1__x.sql",
        "db/migration/U1__x.sql",
        "migrations/1_x.up.sql",
        "migrations/1_x.down.sql",
        "prisma/migrations/1_x/migration.sql",
        "db/changelog/x.xml",
        "db/changelog/x.yaml",
        "db/changelog/x.sql",
        "database/migrations/1_x.php",
        "sqitch/deploy/x.sql",
        "sqitch/revert/x.sql",
    ];
    let mut rng = fastrand::Rng::with_seed(15);
    for _ in 0..3_000 {
        let text: String = (0..rng.usize(0..40))
            .map(|_| PIECES[rng.usize(..PIECES.len())])
            .collect();
        let docs: Vec<Document> = PATHS
            .iter()
            .map(|p| doc(p, &format!("<databaseChangeLog>\n{text}")))
            .chain(PATHS.iter().map(|p| doc(p, &text)))
            .collect();
        let refs: Vec<&Document> = docs.iter().filter(|d| is_migration_doc(d)).collect();
        for m in analyze(&refs) {
            let _ = m.severity();
        }
    }
}

#[test]
fn old_style_rails_and_typeorm() {
    let m = one(
        "db/migrate/20100101000000_drop_x.rb",
        "class DropX < ActiveRecord::Migration\n  def self.up\n    drop_table :x\n  end\n\n  def self.down\n    raise ActiveRecord::IrreversibleMigration\n  end\nend\n",
    );
    assert!(!m.reversible);
    assert_eq!((m.destructive[0].1.line, m.evidence.line), (3, 7));
    let m = one(
        "src/migrations/1700000000000-Fill.ts",
        "export class Fill1700000000000 implements MigrationInterface {\n    public async up(queryRunner: QueryRunner): Promise<void> {\n        await queryRunner.query(`UPDATE \"user\" SET \"plan\" = 'free'`);\n    }\n\n    public async down(queryRunner: QueryRunner): Promise<void> {\n        await queryRunner.query(`UPDATE \"user\" SET \"plan\" = NULL`);\n    }\n}\n",
    );
    assert!(m.reversible, "{m:#?}");
    assert_eq!(m.backfill[0].line, 3);
}

#[test]
fn flyway_callbacks_and_django_noop_forward() {
    let ms = run(&[
        doc("db/migration/V1__a.sql", "CREATE TABLE a (id int);\n"),
        doc("db/migration/U1__a.sql", "DROP TABLE a;\n"),
        doc(
            "db/migration/afterMigrate.sql",
            "GRANT SELECT ON a TO reporting;\n",
        ),
    ]);
    assert_eq!(verdicts(&ms), vec![("V1__a", true)]);
    let m = one(
        "shop/migrations/0003_x.py",
        "from django.db import migrations\n\n\nclass Migration(migrations.Migration):\n    operations = [\n        migrations.RunPython(migrations.RunPython.noop, migrations.RunPython.noop),\n    ]\n",
    );
    assert!(m.reversible && m.backfill.is_empty(), "{m:#?}");
}

#[test]
fn a_merge_revision_runs_nothing_and_loses_nothing() {
    let m = one(
        "alembic/versions/abc_merge.py",
        "\"\"\"merge heads\"\"\"\nfrom alembic import op\n\nrevision = \"abc\"\ndown_revision = (\"a\", \"b\")\n\n\ndef upgrade():\n    pass\n\n\ndef downgrade():\n    pass\n",
    );
    assert!(m.reversible, "{m:#?}");
    assert_eq!(m.severity(), None);
    assert_eq!(m.evidence.line, 12);
}

#[test]
fn alembic_core_deletes_and_updates() {
    let m = one(
        "alembic/versions/d1_purge.py",
        "from alembic import op\nimport sqlalchemy as sa\n\nt = sa.table(\"t\", sa.column(\"x\"))\n\n\ndef upgrade():\n    op.execute(t.delete().where(t.c.x == None))\n    op.execute(t.update().values(x=1))\n\n\ndef downgrade():\n    raise NotImplementedError()\n",
    );
    assert!(!m.reversible);
    assert_eq!(m.destructive[0].1.line, 8);
    assert_eq!(m.backfill[0].line, 9);
    assert_eq!(m.evidence.line, 13);
}

#[test]
fn laravel_doctrine_and_sqitch() {
    let m = one(
        "database/migrations/2024_01_01_000000_drop_legacy.php",
        "<?php\n\nuse Illuminate\\Database\\Migrations\\Migration;\n\nreturn new class extends Migration\n{\n    public function up(): void\n    {\n        Schema::dropIfExists('legacy');\n    }\n\n    public function down(): void\n    {\n        //\n    }\n};\n",
    );
    assert!(!m.reversible);
    assert_eq!((m.destructive[0].1.line, m.evidence.line), (9, 12));
    let m = one(
        "migrations/Version20240101000000.php",
        "<?php\nfinal class Version20240101000000 extends AbstractMigration\n{\n    public function up(Schema $schema): void\n    {\n        $this->addSql('ALTER TABLE user DROP COLUMN fax');\n    }\n\n    public function down(Schema $schema): void\n    {\n        $this->throwIrreversibleMigrationException();\n    }\n}\n",
    );
    assert!(!m.reversible);
    assert_eq!(m.evidence.line, 11);
    let ms = run(&[
        doc(
            "sqitch/deploy/users.sql",
            "BEGIN;\nCREATE TABLE users (id int);\nCOMMIT;\n",
        ),
        doc(
            "sqitch/revert/users.sql",
            "BEGIN;\nDROP TABLE users;\nCOMMIT;\n",
        ),
        doc(
            "sqitch/verify/users.sql",
            "SELECT id FROM users WHERE false;\n",
        ),
    ]);
    assert_eq!(verdicts(&ms), vec![("users", true)]);
    assert_eq!(ms[0].evidence.line, 2);
}

#[test]
fn up_files_without_any_down_are_forward_only() {
    let ms = run(&[
        doc(
            "db/migrations/000001_a.up.sql",
            "CREATE TABLE a (id int);\n",
        ),
        doc(
            "db/migrations/000002_b.up.sql",
            "ALTER TABLE a DROP COLUMN b;\n",
        ),
    ]);
    let severities: Vec<_> = ms.iter().map(|m| (m.forward_only, m.severity())).collect();
    assert_eq!(
        severities,
        vec![(true, None), (true, Some(FlagSeverity::High))]
    );
}

#[test]
fn a_squashed_django_migration_is_history() {
    let m = one(
        "shop/migrations/0001_squashed_0009.py",
        "from django.db import migrations\n\n\nclass Migration(migrations.Migration):\n    replaces = [(\"shop\", \"0001_initial\"), (\"shop\", \"0009_x\")]\n\n    operations = [\n        migrations.RemoveField(model_name=\"a\", name=\"b\"),\n        migrations.RunPython(fill),\n    ]\n",
    );
    assert!(m.reversible && m.destructive.is_empty(), "{m:#?}");
    assert_eq!((m.severity(), m.evidence.line), (None, 5));
}

#[test]
fn liquibase_spaced_directives_and_cdata() {
    let d = doc(
        "db/changelog/x.sql",
        "-- liquibase formatted sql\n\n-- changeset ann:1\nCREATE TABLE t (id int);\n-- rollback DROP TABLE t;\n\n-- changeset ann:2\nDELETE FROM t;\n",
    );
    assert!(is_migration_doc(&d));
    let ms = analyze(&[&d]);
    let verdicts: Vec<_> = ms.iter().map(|m| (m.name.as_str(), m.reversible)).collect();
    assert_eq!(
        verdicts,
        vec![("x changeset 1", true), ("x changeset 2", false)]
    );
    let d = doc(
        "db/changelog/y.xml",
        "<databaseChangeLog>\n<changeSet id=\"1\" author=\"a\">\n<sql><![CDATA[DELETE FROM t WHERE x < 1]]></sql>\n</changeSet>\n</databaseChangeLog>\n",
    );
    let ms = analyze(&[&d]);
    assert_eq!(ms[0].destructive[0].0, "DELETE FROM");
    assert!(!ms[0].reversible);
}
