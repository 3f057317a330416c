import { render } from 'preact';
import { loadSession } from './api';
import { App } from './app';
import './styles.css';

// The page is served only after login (or read-only); a session that has expired since goes back to the form.
const session = await loadSession();
if (session === undefined) location.assign('/');
else render(<App mode={session.mode} />, document.getElementById('app')!);
