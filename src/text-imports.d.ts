/** Python sources embedded as text (`import x from "./y.py" with { type: "text" }`), as Bun bundles them. */
declare module "*.py" {
  const text: string;
  export default text;
}
