// Report to TNS: the AT report Nightjar would send about a vetted object, reviewed here and
// sent with the broker's bot; what is sent is exactly the draft shown (its digest).
import { useEffect, useState } from "preact/hooks";
import { apiKey, gql } from "./api.js";
import { fmt, Link, message, objectPath } from "./nav.jsx";

const DRAFT_QUERY = `query TnsDraft($oid: String!, $atType: Int!, $remarks: String) {
  tnsReportDraft(oid: $oid, atType: $atType, remarks: $remarks) { ready problems report digest target }
  object(oid: $oid) { oid survey tnsReports { reportId status objname messages user sent target } }
}`;
const SEND_MUTATION = `mutation SendTns($oid: String!, $digest: String!, $atType: Int!, $remarks: String) {
  sendTnsReport(oid: $oid, digest: $digest, atType: $atType, remarks: $remarks) { reportId status objname messages user sent target }
}`;
const CHECK_MUTATION = `mutation CheckTns($reportId: String!) {
  checkTnsReport(reportId: $reportId) { reportId status objname messages user sent target }
}`;
/** TNS's AT types (its values list). */
const AT_TYPES = [[1, "PSN — possible supernova"], [2, "PNV — possible nova"], [3, "AGN"], [4, "NUC — nuclear"], [0, "Other"]];

function Summary({ report }) {
  const at = report?.at_report?.["0"];
  if (!at) return null;
  const points = Object.values(at.photometry?.photometry_group || {});
  const nd = at.non_detection || {};
  return (
    <dl class="facts" id="tns-summary">
      <dt>Internal name</dt><dd>{at.internal_name}</dd>
      <dt>Position</dt><dd>{fmt(at.ra?.value, 6)}, {fmt(at.dec?.value, 6)} ± {at.ra?.error}″</dd>
      <dt>Discovery (first detection)</dt><dd id="tns-discovery">{at.discovery_datetime || "—"}</dd>
      <dt>Last non-detection before it</dt><dd id="tns-nondetection">{nd.obsdate ? `${nd.obsdate}, fainter than ${nd.limiting_flux} mag (filter ${nd.filter_value})` : nd.archival_remarks || "—"}</dd>
      <dt>Photometry</dt><dd id="tns-points">{points.length} detections</dd>
    </dl>
  );
}

function Reports({ reports, onCheck }) {
  if (!reports?.length) return <p>No report sent yet.</p>;
  return (
    <table class="compact" id="tns-reports" aria-label="reports sent to TNS">
      <thead><tr><th scope="col">report id</th><th scope="col">status</th><th scope="col">TNS name</th><th scope="col">sent</th><th scope="col">by</th><th scope="col">TNS said</th><th scope="col"><span class="sr-only">actions</span></th></tr></thead>
      <tbody>{reports.map((r) => (
        <tr key={r.reportId} data-report={r.reportId}>
          <td>{r.reportId}</td><td class="status">{r.status}</td>
          <td>{r.objname ? <a href={`https://www.wis-tns.org/object/${encodeURIComponent(r.objname.replace(/^(AT|SN)\s*/, ""))}`} rel="noopener">{r.objname}</a> : "—"}</td>
          <td>{r.sent.slice(0, 19)}</td><td>{r.user}</td><td>{r.messages.join("; ") || "—"}</td>
          <td>{r.status === "SUBMITTED" && <button type="button" onClick={() => onCheck(r.reportId)}>Ask TNS again</button>}</td>
        </tr>))}</tbody>
    </table>
  );
}

export function TnsReportPage({ oid }) {
  const [options, setOptions] = useState({ atType: 1, remarks: null });
  const [form, setForm] = useState({ atType: 1, remarks: "" });
  const [data, setData] = useState(null);
  const [error, setError] = useState(null);
  const [status, setStatus] = useState(null);
  const [busy, setBusy] = useState(false);

  const load = async (opts = options) => {
    try {
      const d = await gql(DRAFT_QUERY, { oid, ...opts });
      setData(d);
      setError(null);
      if (opts.remarks === null) setForm({ atType: opts.atType, remarks: d.tnsReportDraft.report.at_report["0"].remarks });
    } catch (e) { setError(message(e)); }
  };
  useEffect(() => { load(); }, [oid]);

  const redraft = (e) => {
    e.preventDefault();
    const next = { atType: Number(form.atType), remarks: form.remarks };
    setOptions(next);
    load(next);
  };
  const send = async () => {
    setBusy(true);
    setStatus("Sending…");
    try {
      const { sendTnsReport: r } = await gql(SEND_MUTATION, { oid, digest: data.tnsReportDraft.digest, ...options });
      setStatus(`Sent: report ${r.reportId}, ${r.status}${r.objname ? ` as ${r.objname}` : ""}`);
      await load();
    } catch (e) { setStatus(`Not sent: ${message(e)}`); }
    setBusy(false);
  };
  const check = async (reportId) => {
    try {
      const { checkTnsReport: r } = await gql(CHECK_MUTATION, { reportId });
      setStatus(`Report ${r.reportId}: ${r.status}${r.objname ? ` as ${r.objname}` : ""}`);
      await load();
    } catch (e) { setStatus(message(e)); }
  };

  if (error) return <section><h1>Report {oid} to TNS</h1><p class="error" role="alert">{error}</p><p><Link href={objectPath(oid)}>Back to {oid}</Link></p></section>;
  if (!data) return <p aria-busy="true">Building the report…</p>;
  const draft = data.tnsReportDraft;
  const dirty = Number(form.atType) !== options.atType || (options.remarks !== null && form.remarks !== options.remarks)
    || (options.remarks === null && form.remarks !== draft.report.at_report["0"].remarks);
  const reported = (data.object?.tnsReports || []).some((r) => r.status !== "REJECTED");
  return (
    <section aria-labelledby="tns-title">
      <h1 id="tns-title">Report <Link href={objectPath(oid)}>{oid}</Link> to TNS</h1>
      <p>An AT report in TNS's bulk-report format: discovery at the first positive detection, the last non-detection before it, and every positive detection. It goes to <code id="tns-target">{draft.target}</code> with the broker's bot.</p>
      {draft.problems.length > 0 && <div class="error" role="alert" id="tns-problems"><p>It cannot be sent yet:</p><ul>{draft.problems.map((p) => <li key={p}>{p}</li>)}</ul></div>}
      <form class="tns-options" onSubmit={redraft} aria-label="Report options">
        <label>AT type <select name="atType" value={form.atType} onChange={(e) => setForm({ ...form, atType: e.target.value })}>
          {AT_TYPES.map(([v, text]) => <option key={v} value={v}>{text}</option>)}</select></label>
        <label>Remarks <textarea name="remarks" rows={3} maxLength={1000} value={form.remarks} onInput={(e) => setForm({ ...form, remarks: e.target.value })} /></label>
        <button type="submit" disabled={!dirty}>Update the draft</button>
      </form>
      <Summary report={draft.report} />
      <details open><summary>The JSON TNS will receive</summary><pre id="tns-json" tabIndex={0}>{JSON.stringify(draft.report, null, 2)}</pre></details>
      {!apiKey() && <p class="notice">Sending needs an API key allowed to report (Settings).</p>}
      <button type="button" id="tns-send" disabled={!draft.ready || dirty || busy || reported || !apiKey()} onClick={send}>
        Send this report to TNS</button>
      {dirty && <span class="hint"> Update the draft to review your changes before sending.</span>}
      {status && <p role="status" id="tns-status">{status}</p>}
      <h2>Reports sent</h2>
      <Reports reports={data.object?.tnsReports} onCheck={check} />
    </section>
  );
}
