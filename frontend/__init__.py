"""The browser app (TypeScript + Vite) and the Django views that serve its build (issue: labelling
workspace). Empty until that issue lands."""
