"""The browser app: a TypeScript single-page app (src/, built by Vite into static/frontend/) and the
Django side that serves it from the same origin (views.py) plus the few endpoints only the app needs
(apis.py: session login/logout, the labelling context of frames)."""
