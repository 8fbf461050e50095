// duck.mjs runs SQL statements in an in-memory DuckDB and prints their
// results as a JSON array of objects {columns, types, rows}, one per
// statement. The io/ tests use it as an independent reader and writer of
// their files.
//
//   node duck.mjs "SELECT * FROM read_parquet('f.parquet')"
import { DuckDBInstance } from '@duckdb/node-api';

const stmts = process.argv.slice(2);
if (stmts.length === 0) {
  console.error('usage: node duck.mjs SQL...');
  process.exit(2);
}
const inst = await DuckDBInstance.create(':memory:');
const con = await inst.connect();
const out = [];
for (const sql of stmts) {
  const res = await con.runAndReadAll(sql);
  out.push({
    columns: res.columnNames(),
    types: res.columnTypes().map((t) => t.toString()),
    rows: res.getRowsJson(),
  });
}
process.stdout.write(JSON.stringify(out));
