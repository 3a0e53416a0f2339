# ruff: noqa: E501 - HTML lines, not Python
"""The HTML page's template, kept as a Python string so the package carries it without package data.

Autoescaping is on: every value from the store is escaped; only the SVG charts (built from escaped parts in
charts.py) are marked safe. Numbers the browser test reads carry data-* attributes.
"""

HTML = """<!doctype html>
<html lang="en-GB">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{ r.trust_name }} · migration report</title>
<style>
:root { --ok:#2e7d32; --bad:#c62828; --warn:#f9a825; --muted:#5f6368; --line:#dadce0; }
* { box-sizing: border-box; }
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 0; color: #202124; }
header { background: #0b3d91; color: #fff; padding: 20px 32px; }
header h1 { margin: 0 0 4px; font-size: 24px; }
header p { margin: 0; opacity: .85; }
main { padding: 16px 32px 48px; max-width: 1320px; }
table.phases { font-size: 14px; }
summary { cursor: pointer; color: #0b3d91; margin: 4px 0; }
h2 { margin-top: 32px; border-bottom: 2px solid var(--line); padding-bottom: 4px; }
h3 { margin-bottom: 6px; }
.tiles { display: flex; flex-wrap: wrap; gap: 12px; margin: 16px 0; }
.tile { border: 1px solid var(--line); border-radius: 8px; padding: 10px 16px; min-width: 150px; }
.tile .n { font-size: 26px; font-weight: 600; }
.tile .k { color: var(--muted); font-size: 13px; }
table { border-collapse: collapse; width: 100%; margin: 8px 0 16px; }
th, td { border-bottom: 1px solid var(--line); padding: 5px 8px; text-align: left; vertical-align: top; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
.status { display: inline-block; padding: 1px 8px; border-radius: 10px; font-size: 12px; background: #eee; white-space: nowrap; }
.status.done, .status.complete, .status.ok { background: #e6f4ea; color: var(--ok); }
.status.failed, .status.attention, .status.differences, .status.blocks { background: #fce8e6; color: var(--bad); }
.status.running, .status.in-progress, .status.planned { background: #fef7e0; color: #8a6d00; }
.status.rolled-back { background: #e8eaed; }
.status.fixed { background: #e8f0fe; color: #1a56c4; }
.chart { max-width: 900px; display: block; margin: 8px 0 16px; }
.chart .lbl { font-size: 11px; fill: #3c4043; }
.chart .track { fill: #f1f3f4; }
.chart .axis { stroke: #9aa0a6; }
.muted { color: var(--muted); }
section.academy { border-top: 1px solid var(--line); margin-top: 24px; }
footer { color: var(--muted); font-size: 12px; margin-top: 40px; }
</style>
</head>
<body>
<header>
<h1>{{ r.trust_name }}: academy migration report</h1>
<p>Generated {{ r.generated_at }}{% if r.scope %} · academy {{ r.scope }}{% endif %}
 · {{ r.academies|length }} academies · {{ r.audit_entries }} audited operator actions</p>
</header>
<main>
<div class="tiles">
{% for key, label in tiles %}
<div class="tile"><div class="n" data-total="{{ key }}" data-value="{{ r.totals.get(key, 0) }}">
{{ bytesize(r.totals.get(key, 0)) if key == "bytes" else fmt(r.totals.get(key, 0)) }}</div>
<div class="k">{{ label }}</div></div>
{% endfor %}
</div>

<h2>Academies</h2>
<table id="overview">
<thead><tr><th>Academy</th><th>Wave</th><th>Overall</th>
{% for p in phases %}<th>{{ p }}</th>{% endfor %}<th>Rollback plan</th></tr></thead>
<tbody>
{% for a in r.academies %}
<tr data-academy="{{ a.code }}">
<td><a href="#academy-{{ a.code }}">{{ a.name }}</a></td>
<td class="num" data-field="wave">{{ a.wave if a.wave is not none else "–" }}</td>
<td><span class="status {{ a.overall }}">{{ a.overall }}</span></td>
{% for p in a.phases %}<td data-phase="{{ p.phase }}" data-field="status">
<span class="status {{ p.status }}">{{ p.status }}</span></td>{% endfor %}
<td data-field="rollback">{{ "available" if a.rollback_available else "none" }}</td>
</tr>
{% endfor %}
</tbody>
</table>

{% if r.onboarding.get("preflight") or r.onboarding.get("onedrive") %}
<h2>Readiness</h2>
<section id="readiness">
{% if r.onboarding.get("preflight") %}{% set w = readiness(r.onboarding.preflight) %}
<p data-field="preflight" data-passing="{{ w.passing }}" data-fixed="{{ w.fixed }}" data-total="{{ w.total }}">
Latest preflight of each tenant, {{ w.taken }}: {{ w.passing }} of {{ w.total }} checks pass
{%- if w.fixed %}; {{ w.fixed }} fixed by bootstrap since{% endif %}
{%- if r.onboarding.bootstrap %}; bootstrap registered {{ r.onboarding.bootstrap|length }} item(s){% endif %}.
{% if w.superseded %}<span class="muted">{{ w.superseded }} earlier preflight(s) superseded, not shown.</span>{% endif %}</p>
<table id="preflight"><thead><tr><th>Check</th><th>Tenant</th><th>State</th><th>Result</th><th>Fix</th></tr></thead><tbody>
{% for c in r.onboarding.preflight.checks %}{% set state = check_state(c) %}
<tr data-ok="{{ c.ok }}" data-state="{{ state }}"><td>{{ c.check }}</td><td>{{ c.tenant }}</td>
<td><span class="status {{ state }}">{{ state }}</span></td>
<td>{{ c.result }}{% if c.get("fixed_by") %} <span class="muted">(fixed by {{ c.fixed_by }})</span>{% endif %}</td>
<td>{{ "" if c.get("fixed_by") else c.get("fix", "") }}</td></tr>{% endfor %}
</tbody></table>
{% endif %}
{% if r.onboarding.get("onedrive") %}
<table id="onedrive"><thead><tr><th>Academy</th><th class="num">OneDrives ready</th><th class="num">Waiting</th>
<th class="num">Requested, all calls</th><th class="num">Admin calls, all</th></tr></thead><tbody>
{% for code, d in r.onboarding.onedrive.items() %}<tr data-academy="{{ code }}"><td>{{ code }}</td>
<td class="num" data-field="ready">{{ d.get("ready", 0) }}</td>
<td class="num" data-field="waiting">{{ d.get("waiting", [])|length }}</td>
<td class="num" data-field="requested">{{ d.get("requested", 0) }}</td>
<td class="num" data-field="calls">{{ d.get("calls", 0) }}</td></tr>{% endfor %}
</tbody></table>
{% endif %}
</section>
{% endif %}

{% if progress_svg %}<h2>Progress per phase</h2>{{ progress_svg|safe }}{% endif %}
{% if items_svg or bytes_svg %}<h2>Throughput over time</h2>{{ items_svg|safe }}{{ bytes_svg|safe }}{% endif %}

{% for a in r.academies %}
<section class="academy" id="academy-{{ a.code }}" data-academy="{{ a.code }}">
<h2>{{ a.name }} <span class="muted">({{ a.code }}, wave {{ a.wave if a.wave is not none else "–" }})</span></h2>
<p>
{% if a.started_at %}Started {{ a.started_at }}, last activity {{ a.finished_at or "–" }}
({{ duration(a.duration_seconds) }}).{% else %}No runs yet.{% endif %}
Rollback plan: <strong>{{ "available" if a.rollback_available else "none (nothing created)" }}</strong>.

{% set thr = a.phases|sum(attribute="throttled") %}{% set waited = a.phases|sum(attribute="wait_seconds") %}
Throttling met: <strong data-field="throttled" data-value="{{ thr }}">{{ fmt(thr) }}</strong> answers (429/503),
<span data-field="wait_seconds" data-value="{{ waited }}">{{ duration(waited) }}</span> spent waiting as asked.
</p>

<h3>Phases</h3>
<table class="phases">
<thead><tr><th>Phase</th><th>Status</th><th class="num">Planned</th><th class="num">Migrated</th>
<th class="num">Already present</th><th class="num">Skipped</th><th class="num">Failed</th>
<th class="num">Bytes copied</th><th class="num">Renamed</th><th class="num">Requests</th>
<th class="num">429/503 met</th><th class="num">Waited</th><th class="num">Time</th><th>Rollback</th></tr></thead>
<tbody>
{% for p in a.phases %}
<tr data-academy="{{ a.code }}" data-phase="{{ p.phase }}">
<td>{{ p.phase }}</td><td><span class="status {{ p.status }}">{{ p.status }}</span></td>
{% for key in count_keys %}<td class="num" data-metric="{{ key }}" data-value="{{ getattr(p, key) }}">
{{ bytesize(getattr(p, key)) if key == "bytes" else fmt(getattr(p, key)) }}</td>{% endfor %}
<td class="num" data-metric="wait_seconds" data-value="{{ p.wait_seconds }}">{{ duration(p.wait_seconds) }}</td>
<td class="num">{{ duration(p.duration_seconds) }}</td>
<td>{{ "available" if p.rollback_available else "–" }}</td>
</tr>
{% endfor %}
</tbody>
</table>

<h3>Discovery findings</h3>
{% if a.discovered %}<p class="muted">Discovered:
{% for k, v in a.discovered.items() %}{{ k }} {{ v }}{% if not loop.last %}, {% endif %}{% endfor %}.</p>{% endif %}
{% if a.findings %}
<p data-field="findings" data-value="{{ a.findings|length }}">{{ a.findings|length }} findings:
{% for k, n in a.finding_counts.items() %}{{ k }} {{ n }}{% if not loop.last %}, {% endif %}{% endfor %}.</p>
<table class="finding-kinds">
<thead><tr><th>Kind</th><th class="num">Count</th><th>How they were handled</th></tr></thead>
<tbody>
{% for k in a.finding_summary %}
<tr data-kind="{{ k.kind }}"><td>{{ k.kind }}</td><td class="num" data-value="{{ k.count }}">{{ k.count }}</td>
<td>{{ k.handling|join("; ") }}</td></tr>
{% endfor %}
</tbody>
</table>
<details{% if a.findings|length <= 20 %} open{% endif %}><summary>The findings, one by one</summary>
<table class="findings">
<thead><tr><th>Kind</th><th>Object</th><th>Finding</th><th>How it was handled</th></tr></thead>
<tbody>
{% for f in a.findings[:max_findings] %}
<tr><td>{{ f.get("kind", "") }}</td><td>{{ f.get("display", "") or f.get("object_id", "") }}</td>
<td>{{ f.get("message", "") }}</td><td>{{ f.get("handling", "") }}</td></tr>
{% endfor %}
</tbody>
</table>
</details>
{% if a.findings|length > max_findings %}<p class="muted">… and {{ a.findings|length - max_findings }} more
(full list: <code>trustfold report {{ a.code }} --format json</code>).</p>{% endif %}
{% else %}<p data-field="findings" data-value="0">No findings recorded.</p>{% endif %}

{% if a.sharing %}<h3>Sharing</h3>
<p data-field="sharing-carried">Carried into the trust tenant:
{% for k, n in a.sharing.carried.items() %}{{ k }} {{ n }}{% if not loop.last %}, {% endif %}{% else %}none{% endfor %}.</p>
{% if a.sharing.audience %}{% set aud = a.sharing.audience %}<p data-field="sharing-audience">{{ aud.rule }}
Academy-wide links carried as grants to the academy's people group: <span data-field="sharing-academy-group">{{ aud.academy_group }}</span>;
trust-wide by decision: <span data-field="sharing-trust-wide">{{ aud.trust_wide }}</span>;
link restrictions carried: {{ aud.restrictions_carried }}, narrowed (not carried, stricter): <span data-field="sharing-narrowed">{{ aud.restrictions_narrowed }}</span>.</p>{% endif %}
<table class="sharing"><thead><tr><th>Not carried</th><th>Grants</th><th>Why</th></tr></thead><tbody>
{% for x in a.sharing.not_carried %}
<tr><td>{{ x.kind }}</td><td class="num">{{ x.count }}</td><td>{{ x.why }}</td></tr>
{% endfor %}
</tbody></table>
{% if a.sharing.refused %}<p data-field="sharing-refused" data-value="{{ a.sharing.refused|length }}">Refused by
SharePoint (the library's limit of items with unique permissions): {{ a.sharing.refused|length }} item(s).</p>
<table class="sharing-refused"><thead><tr><th>Item</th><th>Refusal</th><th>Handling</th></tr></thead><tbody>
{% for r in a.sharing.refused[:max_findings] %}
<tr><td>{{ r.path }}</td><td>{{ r.message }}</td><td>{{ r.handling }}</td></tr>
{% endfor %}
</tbody></table>{% endif %}{% endif %}

{% if a.mail %}<h3>Mail</h3>
<p data-field="mail">Carried: <span data-field="mail-mailboxes">{{ a.mail.mailboxes }}</span> mailboxes,
<span data-field="mail-items">{{ a.mail.items }}</span> items, <span data-field="mail-gb">{{ a.mail.gb }}</span> GB{% if a.mail.waiting %};
{{ a.mail.waiting }} waiting for the trust user's mailbox{% endif %}.</p>
{% if a.mail.failures %}<table class="mail"><thead><tr><th>Not carried</th><th>Items</th><th>Why</th></tr></thead><tbody>
{% for x in a.mail.failures %}
<tr><td>{{ x.kind }}</td><td class="num">{{ x.count }}</td><td>{{ x.why }}</td></tr>
{% endfor %}
</tbody></table>{% endif %}{% endif %}

{% if a.teams %}<h3>Teams</h3>
<p data-field="teams-carried">Carried into the trust tenant: <span data-field="teams">{{ a.teams.teams }}</span> teams
(<span data-field="class-teams">{{ a.teams.class_teams }}</span> class teams),
<span data-field="channels">{{ a.teams.channels }}</span> channels,
<span data-field="messages">{{ a.teams.messages }}</span> messages; migration completed on
<span data-field="channels-completed">{{ a.teams.completed }}</span> channels.</p>
<table class="teams"><thead><tr><th>Not carried</th><th>Count</th><th>Why</th></tr></thead><tbody>
{% for x in a.teams.not_carried %}
<tr><td>{{ x.kind }}</td><td class="num">{{ x.count }}</td><td>{{ x.why }}</td></tr>
{% endfor %}
</tbody></table>{% endif %}

{% if a.accounts %}<h3>Accounts</h3>
<p data-field="accounts">{{ a.accounts.disabled_carried }} disabled accounts carried disabled;
{{ a.accounts.guests_listed }} guests listed for invitation (never created as members).</p>
{% set lic = a.accounts.get("licensing") %}{% if lic %}<p data-field="licensing">Group licensing:
{% if lic.processing_s is not none %}Entra licensed the members in <span data-field="licence-processing-s" data-value="{{ lic.processing_s }}">{{ "%.0f"|format(lic.processing_s) }} s</span>{% else %}Entra was still processing{% endif %};
<span data-field="without-licence" data-value="{{ lic.without_licence }}">{{ lic.without_licence }}</span> user(s) without an active licence.</p>
{% if lic.reasons %}<table class="licence-states"><thead><tr><th>Licence state</th><th class="num">Users</th></tr></thead><tbody>
{% for r in lic.reasons %}<tr><td>{{ r.reason }}</td><td class="num">{{ r.count }}</td></tr>
{% endfor %}</tbody></table>{% endif %}{% endif %}
{% if a.accounts.matches %}<table class="matches"><thead><tr><th>Matched</th><th>Source</th><th>Trust object</th>
<th>Mapping guard</th></tr></thead><tbody>
{% for m in a.accounts.matches %}
<tr><td>{{ m.kind }}</td><td>{{ m.source }}</td><td>{{ m.name }} ({{ m.target }})</td><td>{{ m.guard }}</td></tr>
{% endfor %}
</tbody></table>{% endif %}{% endif %}

<h3>Verification</h3>
{% if a.verify is none %}<p data-field="verify" data-value="none">Not verified yet.</p>
{% else %}{% set diffs = differences(a) %}
<p data-field="verify" data-value="{{ 'ok' if a.verify.get('ok') else 'differences' }}">
<span class="status {{ 'ok' if a.verify.get('ok') else 'differences' }}">
{{ "no differences" if a.verify.get("ok") else "differences found" }}</span>
{{ fmt(a.verify.get("checked", 0)) }} objects checked{% if diffs %}, {{ plural(diffs|length, "difference") }}{% endif %}.</p>
{% if diffs %}
<table class="differences"><thead><tr><th>Kind</th><th>Object</th><th>Difference</th></tr></thead><tbody>
{% for d in diffs[:differences_shown] %}
<tr><td>{{ d.get("kind", "") }}</td><td>{{ d.get("object", "") }}</td><td>{{ d.get("message", "") }}</td></tr>
{% endfor %}
</tbody></table>
{% if diffs|length > differences_shown %}<p class="muted" data-field="more-differences">… and
{{ diffs|length - differences_shown }} more (full list: <code>trustfold report {{ a.code }} --format json</code>).</p>{% endif %}
{% endif %}
<table class="verification"><thead><tr><th>Checked</th><th class="num">Objects</th><th class="num">Differences</th>
<th>What</th></tr></thead><tbody>
{% for k in a.verification %}
<tr data-kind="{{ k.kind }}"><td>{{ k.kind }}</td>
<td class="num" data-metric="checked" data-value="{{ k.checked }}">{{ fmt(k.checked) }}</td>
<td class="num" data-metric="differences" data-value="{{ k.differences }}">{{ fmt(k.differences) }}</td>
<td>{{ verified_detail(k) }}</td></tr>
{% endfor %}
</tbody></table>
{% endif %}
{% if a.cutover %}
<h3>Domain cut-over: {{ a.cutover.domain }}</h3>
<p data-field="cutover" data-value="{{ a.cutover.status }}"><span class="status {{ a.cutover.status }}">
{{ a.cutover.status }}</span>{% if a.cutover.dns_wait_seconds %}; waiting time for DNS
{{ duration(a.cutover.dns_wait_seconds) }}{% endif %}.</p>
<table class="runbook"><thead><tr><th>When (UTC)</th><th>Step</th></tr></thead><tbody>
{% for e in a.cutover.events %}<tr><td>{{ e.at }}</td><td>{{ e.event }}</td></tr>
{% endfor %}</tbody></table>
{% for d in a.cutover.dns %}<p>DNS: {{ d.action }} TXT <code>{{ d.text }}</code> at {{ d.name }}</p>{% endfor %}
{% if a.cutover.get("mail_dns") %}<p>Mail records in the trust tenant:</p>
<table class="maildns"><thead><tr><th>Type</th><th>Name</th><th>Value</th><th>Why</th></tr></thead><tbody>
{% for r in a.cutover.mail_dns %}<tr data-record="{{ r.kind }}"><td>{{ r.kind }}</td><td>{{ r.name }}</td>
<td><code>{% if r.kind == "MX" %}{{ r.preference }} {% endif %}{{ r.value }}</code></td><td>{{ r.why }}</td></tr>
{% endfor %}</tbody></table>{% endif %}
{% if a.cutover.get("mail_steps") %}<p>Mail side of the cut-over, in order:</p><ol class="mailsteps">
{% for x in a.cutover.mail_steps %}<li>{{ x }}</li>{% endfor %}</ol>{% endif %}
<p>What users will notice:</p><ul>{% for n in a.cutover.notice %}<li>{{ n }}</li>{% endfor %}</ul>
{% endif %}
</section>
{% endfor %}
<footer>Written by trustfold from its state store. Contains no credentials or passwords.</footer>
</main>
</body>
</html>
"""
