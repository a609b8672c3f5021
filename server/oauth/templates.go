package oauth

import "html/template"

// The pages are plain HTML and CSS, no JavaScript, laid out for a phone
// first: one column, large tap targets, system fonts.

const pageLayout = `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>{{.Title}} · {{.ServerName}}</title>
<style>
*, *::before, *::after { box-sizing: border-box; }
body { margin: 0; font: 16px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #1d2d35; background: #f1f5f7; }
main { max-width: 26rem; margin: 0 auto; padding: 1.5rem 1.25rem 3rem; }
.brand { margin: 0 0 1.5rem; font-size: .9rem; color: #5b6f79; }
.brand strong { color: #0d8a73; }
h1 { font-size: 1.6rem; line-height: 1.25; margin: 0 0 1rem; }
.card { background: #fff; border-radius: 14px; padding: 1.25rem; box-shadow: 0 1px 3px rgba(0,0,0,.08); }
label { display: block; font-weight: 600; margin: 1rem 0 .35rem; }
label:first-child { margin-top: 0; }
.hint { display: block; font-weight: 400; font-size: .85rem; color: #5b6f79; }
input[type=text], input[type=password] { width: 100%; font-size: 1.05rem; padding: .75rem .8rem; border: 1px solid #b9c6cc; border-radius: 10px; background: #fff; color: inherit; }
input:focus { outline: 3px solid #9fd9cc; border-color: #0d8a73; }
input.code { font-family: ui-monospace, monospace; letter-spacing: .08em; text-transform: uppercase; }
button { display: block; width: 100%; margin-top: 1.25rem; padding: .85rem; font-size: 1.05rem; font-weight: 600; border: 0; border-radius: 10px; background: #0d8a73; color: #fff; cursor: pointer; }
button.secondary { background: #e4ebee; color: #1d2d35; }
button.danger { background: #fff; color: #b3261e; border: 1px solid #e0b4b0; width: auto; display: inline-block; margin: 0; padding: .45rem .9rem; font-size: .95rem; }
.error { background: #fdecea; color: #8c1d18; border-radius: 10px; padding: .75rem .9rem; margin: 0 0 1rem; }
.notice { background: #e6f4f1; border-radius: 10px; padding: .75rem .9rem; margin: 0 0 1rem; }
.alt { text-align: center; margin-top: 1.25rem; }
a { color: #0b6e5c; }
.who { font-size: .95rem; color: #5b6f79; }
.links { list-style: none; padding: 0; margin: .75rem 0 0; font-size: .95rem; }
.links li { margin: .2rem 0; }
.sessions { list-style: none; padding: 0; margin: 0; }
.sessions li { background: #fff; border-radius: 12px; padding: .9rem 1rem; margin: 0 0 .75rem; box-shadow: 0 1px 3px rgba(0,0,0,.08); }
.sessions li.highlight { outline: 3px solid #9fd9cc; }
.sessions .name { font-weight: 600; }
.sessions .meta { font-size: .85rem; color: #5b6f79; margin: .15rem 0 .6rem; word-break: break-all; }
.row { display: flex; gap: .75rem; }
.row button { flex: 1; }
code { font-family: ui-monospace, monospace; background: #eef3f5; padding: .05em .3em; border-radius: 4px; word-break: break-all; }
</style>
</head>
<body>
<main>
<p class="brand"><strong>Palpo</strong> · {{.ServerName}}</p>
<h1>{{.Title}}</h1>
{{if .Error}}<p class="error" role="alert">{{.Error}}</p>{{end}}
{{if .Notice}}<p class="notice">{{.Notice}}</p>{{end}}
{{template "content" .}}
</main>
</body>
</html>
`

const signInPage = `{{define "content"}}
<form class="card" method="post" action="{{.Action}}">
<input type="hidden" name="csrf" value="{{.CSRF}}">
<input type="hidden" name="next" value="{{.Next}}">
<label for="username">User name</label>
<input type="text" id="username" name="username" value="{{.Username}}" autocomplete="username" autocapitalize="none" autocorrect="off" spellcheck="false" required>
<label for="password">Password</label>
<input type="password" id="password" name="password" autocomplete="current-password" required>
<button type="submit">Sign in</button>
</form>
{{if .SignUpURL}}<p class="alt">New here? <a href="{{.SignUpURL}}">Create an account</a></p>{{end}}
{{end}}`

const signUpPage = `{{define "content"}}
{{if .Closed}}
<p class="card">This server does not let people create accounts themselves. Ask its owner to make one for you.</p>
{{else}}
<form class="card" method="post" action="{{.Action}}">
<input type="hidden" name="csrf" value="{{.CSRF}}">
<input type="hidden" name="next" value="{{.Next}}">
<label for="username">User name <span class="hint">Your address will be @name:{{.ServerName}}</span></label>
<input type="text" id="username" name="username" value="{{.Username}}" autocomplete="username" autocapitalize="none" autocorrect="off" spellcheck="false" required>
<label for="password">Password <span class="hint">At least {{.MinPassword}} characters</span></label>
<input type="password" id="password" name="password" autocomplete="new-password" required>
<label for="confirm">Password again</label>
<input type="password" id="confirm" name="confirm" autocomplete="new-password" required>
{{if .NeedsInvite}}
<label for="invite">Invite code <span class="hint">The code the owner of this server gave you</span></label>
<input type="text" id="invite" class="code" name="invite_code" value="{{.InviteCode}}" autocomplete="off" autocapitalize="characters" autocorrect="off" spellcheck="false" required>
{{end}}
<button type="submit">Create account</button>
</form>
{{end}}
<p class="alt">Already have an account? <a href="{{.SignInURL}}">Sign in</a></p>
{{end}}`

const consentPage = `{{define "content"}}
<div class="card">
<p><strong>{{.ClientName}}</strong> wants to access your account <strong>{{.User}}</strong>: to read and send your messages and manage your rooms, as a new session{{if .DeviceID}} (<code>{{.DeviceID}}</code>){{end}}.</p>
<ul class="links">
{{if .ClientURI}}<li>App: <a href="{{.ClientURI}}" rel="noopener noreferrer">{{.ClientURI}}</a></li>{{end}}
{{if .TOSURI}}<li><a href="{{.TOSURI}}" rel="noopener noreferrer">Terms of service</a></li>{{end}}
{{if .PolicyURI}}<li><a href="{{.PolicyURI}}" rel="noopener noreferrer">Privacy policy</a></li>{{end}}
</ul>
<p class="who">Only allow apps you just opened yourself.</p>
<form method="post" action="{{.Action}}">
<input type="hidden" name="csrf" value="{{.CSRF}}">
{{range .Hidden}}<input type="hidden" name="{{.Name}}" value="{{.Value}}">
{{end}}<div class="row">
<button type="submit" name="action" value="deny" class="secondary">Cancel</button>
<button type="submit" name="action" value="allow">Allow</button>
</div>
</form>
</div>
<form class="alt" method="post" action="{{.SignOutURL}}">
<input type="hidden" name="csrf" value="{{.CSRF}}">
<input type="hidden" name="next" value="{{.Next}}">
<span class="who">Not {{.User}}?</span> <button type="submit" class="danger">Sign out</button>
</form>
{{end}}`

const linkPage = `{{define "content"}}
<form class="card" method="post" action="{{.Action}}">
<input type="hidden" name="csrf" value="{{.CSRF}}">
<label for="user_code">Code shown on your device</label>
<input type="text" id="user_code" class="code" name="user_code" value="{{.UserCode}}" autocomplete="off" autocapitalize="characters" autocorrect="off" spellcheck="false" placeholder="XXXX-XXXX" required>
<button type="submit">Continue</button>
</form>
<p class="alt who">Signed in as {{.User}}</p>
{{end}}`

const messagePage = `{{define "content"}}
{{if .Message}}<p class="card">{{.Message}}</p>{{end}}
{{if .LinkURL}}<p class="alt"><a href="{{.LinkURL}}">{{.LinkText}}</a></p>{{end}}
{{end}}`

const accountPage = `{{define "content"}}
<p class="who">Signed in as <strong>{{.User}}</strong>. These are the apps and devices signed in to your account; sign out any you do not recognise.</p>
<ul class="sessions">
{{range .Sessions}}<li{{if eq .DeviceID $.Highlight}} class="highlight"{{end}}>
<div class="name">{{if .ClientName}}{{.ClientName}}{{else if .DisplayName}}{{.DisplayName}}{{else}}Unnamed session{{end}}</div>
<div class="meta">{{if and .DisplayName .ClientName}}{{.DisplayName}} · {{end}}<code>{{.DeviceID}}</code>{{if not .LastSeen.IsZero}} · last active {{.LastSeen.UTC.Format "2 Jan 2006 15:04"}} UTC{{end}}{{if .LastSeenIP}} from {{.LastSeenIP}}{{end}}</div>
<form method="post" action="{{$.EndURL}}">
<input type="hidden" name="csrf" value="{{$.CSRF}}">
<input type="hidden" name="device_id" value="{{.DeviceID}}">
<button type="submit" class="danger">Sign out</button>
</form>
</li>
{{else}}<li>No sessions: no app is signed in to your account.</li>
{{end}}</ul>
<form method="post" action="{{.SignOutURL}}">
<input type="hidden" name="csrf" value="{{.CSRF}}">
<button type="submit" class="secondary">Sign out of this browser</button>
</form>
{{end}}`

const approvePage = `{{define "content"}}
<div class="card">
<p>An app signed in as <strong>{{.User}}</strong> asks to replace your encryption identity (your cross-signing keys).
Do this only if you chose to reset it in your app, for example because you lost your recovery key: your other
sessions will need to be verified again, and messages you cannot decrypt now stay unreadable.</p>
<form method="post" action="{{.Action}}">
<input type="hidden" name="csrf" value="{{.CSRF}}">
{{range .Hidden}}<input type="hidden" name="{{.Name}}" value="{{.Value}}">
{{end}}<button type="submit">Allow the reset</button>
</form>
</div>
<p class="alt"><a href="/account">Cancel</a></p>
{{end}}`

// pages are the parsed templates, each the layout with its content.
var pages = func() map[string]*template.Template {
	layout := template.Must(template.New("layout").Parse(pageLayout))
	out := map[string]*template.Template{}
	for name, content := range map[string]string{
		"signin": signInPage, "signup": signUpPage, "consent": consentPage,
		"link": linkPage, "message": messagePage, "account": accountPage, "approve": approvePage,
	} {
		out[name] = template.Must(template.Must(layout.Clone()).Parse(content))
	}
	return out
}()
